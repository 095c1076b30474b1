//! The instance state machine driven through its scenarios with a fake
//! clock; shared helpers are used by the sync group tests too.

use super::*;
use crate::vrrp::packet::{pass_data, PeerCheck};
use ferrovs_config::model::GarpSettings;

use std::net::{Ipv4Addr, Ipv6Addr};

pub const MCAST: IpAddr = IpAddr::V4(Ipv4Addr::new(224, 0, 0, 18));
pub const VIP: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 100));

pub fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(198, 18, 0, last))
}

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
pub fn us(n: u64) -> Duration {
    Duration::from_micros(n)
}

pub fn cfg(name: &str, priority: u8, last: u8) -> InstanceConfig {
    InstanceConfig {
        name: name.into(),
        vrid: 51,
        version: Version::V2,
        priority,
        advert_int: Duration::from_secs(1),
        initial_master: false,
        resume_master: false,
        nopreempt: false,
        preempt_delay: Duration::ZERO,
        auth_pass: Some(pass_data("s3cret")),
        vips: vec![VIP],
        excluded: vec![],
        primary_ip: ip(last),
        target: AdvertTarget::Multicast(MCAST),
        garp: GarpSettings::default(),
        skip_check_adv_addr: false,
        tracks: Vec::new(),
        peers: Vec::new(),
    }
}

pub fn v3(mut c: InstanceConfig, interval_ms: u64) -> InstanceConfig {
    c.version = Version::V3;
    c.auth_pass = None;
    c.advert_int = ms(interval_ms);
    c
}

pub fn mc() -> AdvertTarget {
    AdvertTarget::Multicast(MCAST)
}

pub fn adv(i: &Instance, prio: u8) -> Event {
    // Through the wire format, as the glue would.
    let bytes = i.advert(prio).encode(i.config().primary_ip, MCAST);
    let advert = Advert::parse(&bytes, i.config().primary_ip, MCAST).unwrap();
    Event::AdvertReceived {
        rx: RxInfo {
            src: i.config().primary_ip,
            dst: MCAST,
            ttl: 255,
        },
        advert,
    }
}

fn became_master(prio: u8) -> Vec<Action> {
    vec![
        Action::SendAdvert {
            priority: prio,
            to: mc(),
        },
        Action::BecomeMaster,
        Action::SendGarp { count: 5 },
        Action::Notify {
            state: NotifyState::Master,
            priority: prio,
        },
    ]
}

fn started_backup(prio: u8) -> Vec<Action> {
    vec![
        Action::BecomeBackup,
        Action::Notify {
            state: NotifyState::Backup,
            priority: prio,
        },
    ]
}

fn lost_master(prio: u8) -> Vec<Action> {
    vec![
        Action::ReleaseVips,
        Action::BecomeBackup,
        Action::Notify {
            state: NotifyState::Backup,
            priority: prio,
        },
    ]
}

/// A zero-latency LAN of instances with a fake clock: every advert one
/// sends reaches every other connected instance at the same instant.
pub struct Lan {
    pub t0: Instant,
    pub now: Instant,
    pub nodes: Vec<Instance>,
    pub up: Vec<bool>,
    /// (time since t0, node, action)
    pub log: Vec<(Duration, usize, Action)>,
}

impl Lan {
    pub fn new(nodes: Vec<InstanceConfig>) -> Lan {
        let t0 = Instant::now();
        let n = nodes.len();
        Lan {
            t0,
            now: t0,
            nodes: nodes.into_iter().map(Instance::new).collect(),
            up: vec![true; n],
            log: Vec::new(),
        }
    }

    pub fn at(&self) -> Duration {
        self.now - self.t0
    }

    pub fn feed(&mut self, i: usize, ev: Event) {
        let acts = self.nodes[i].handle(ev, self.now);
        self.apply(i, acts);
    }

    fn apply(&mut self, i: usize, acts: Vec<Action>) {
        let at = self.at();
        for a in acts {
            self.log.push((at, i, a.clone()));
            if let Action::SendAdvert { priority, .. } = a {
                if !self.up[i] {
                    continue;
                }
                let ev = adv(&self.nodes[i], priority);
                for j in 0..self.nodes.len() {
                    if j != i && self.up[j] {
                        self.feed(j, ev.clone());
                    }
                }
            }
        }
    }

    /// Runs timers up to `until` (since t0).
    pub fn run_until(&mut self, until: Duration) {
        let end = self.t0 + until;
        loop {
            let next = (0..self.nodes.len())
                .filter(|&i| self.up[i])
                .filter_map(|i| self.nodes[i].next_deadline().map(|d| (d, i)))
                .min();
            match next {
                Some((d, i)) if d <= end => {
                    self.now = self.now.max(d);
                    self.feed(i, Event::TimerFired);
                }
                _ => break,
            }
        }
        self.now = end;
    }

    /// Actions of node `i` logged in `[from, to]`.
    pub fn actions(&self, i: usize, from: Duration, to: Duration) -> Vec<(Duration, Action)> {
        self.log
            .iter()
            .filter(|(t, n, _)| *n == i && *t >= from && *t <= to)
            .map(|(t, _, a)| (*t, a.clone()))
            .collect()
    }

    /// When node `i` last did `a`.
    pub fn last(&self, i: usize, a: &Action) -> Option<Duration> {
        self.log
            .iter()
            .rev()
            .find(|(_, n, x)| *n == i && x == a)
            .map(|(t, _, _)| *t)
    }
}

// v2 skews: (256 - p) / 256 s.
const SKEW_150: Duration = Duration::from_micros(414_062); // 106/256 s = 0.4140625
const SKEW_100: Duration = Duration::from_micros(609_375); // 156/256 s

#[test]
fn timers_follow_the_rfcs() {
    let i = Instance::new(cfg("a", 100, 1));
    assert_eq!(i.skew(), SKEW_100);
    assert_eq!(i.master_down_interval(), ms(3000) + SKEW_100);
    let i = Instance::new(cfg("a", 150, 1));
    assert_eq!(i.skew(), SKEW_150);
    // v3, 1 s (100 cs): ((256 - 100) * 100 cs) / 256 = 60.9375 cs.
    let i = Instance::new(v3(cfg("a", 100, 1), 1000));
    assert_eq!(i.skew(), us(609_375));
    // v3, 50 cs: 156 * 50 / 256 cs = 304.6875 ms (keepalived rounds
    // down to the microsecond).
    let i = Instance::new(v3(cfg("a", 100, 1), 500));
    assert_eq!(i.skew(), us(304_687));
    assert_eq!(i.master_down_interval(), ms(1500) + us(304_687));
}

#[test]
fn election_between_two_instances() {
    let mut lan = Lan::new(vec![cfg("a", 150, 1), cfg("b", 100, 2)]);
    lan.feed(0, Event::Start);
    lan.feed(1, Event::Start);
    assert_eq!(lan.nodes[0].state(), State::Backup);
    assert_eq!(lan.nodes[1].state(), State::Backup);
    lan.run_until(ms(20_000));
    let z = Duration::ZERO;
    // a: backup at start, master after exactly 3 s + skew(150).
    let t_master = ms(3000) + SKEW_150;
    let a: Vec<_> = lan.actions(0, z, t_master);
    let mut want: Vec<_> = started_backup(150).into_iter().map(|x| (z, x)).collect();
    want.extend(became_master(150).into_iter().map(|x| (t_master, x)));
    assert_eq!(a, want);
    // Then adverts every second and the second GARP burst after 5 s.
    let next = lan.actions(0, t_master + us(1), t_master + ms(5000));
    let mut want: Vec<_> = (1..=5)
        .map(|k| {
            (
                t_master + ms(1000 * k),
                Action::SendAdvert {
                    priority: 150,
                    to: mc(),
                },
            )
        })
        .collect();
    want.push((t_master + ms(5000), Action::SendGarp { count: 5 }));
    assert_eq!(next, want);
    // b never left BACKUP.
    assert_eq!(lan.actions(1, us(1), ms(20_000)), vec![]);
    assert_eq!(lan.nodes[1].state(), State::Backup);
    assert_eq!(lan.nodes[0].state(), State::Master);
}

#[test]
fn backup_takes_over_after_exactly_master_down() {
    let mut lan = Lan::new(vec![cfg("a", 150, 1), cfg("b", 100, 2)]);
    lan.feed(0, Event::Start);
    lan.feed(1, Event::Start);
    lan.run_until(ms(10_000));
    let last = lan
        .last(
            0,
            &Action::SendAdvert {
                priority: 150,
                to: mc(),
            },
        )
        .unwrap();
    // kill -9 the master: it sends nothing any more.
    lan.up[0] = false;
    lan.run_until(ms(30_000));
    let takeover = last + ms(3000) + SKEW_100;
    assert_eq!(
        lan.actions(1, ms(10_000), takeover),
        became_master(100)
            .into_iter()
            .map(|a| (takeover, a))
            .collect::<Vec<_>>()
    );
}

#[test]
fn priority_zero_on_stop_hands_over_after_skew() {
    let mut lan = Lan::new(vec![cfg("a", 150, 1), cfg("b", 100, 2)]);
    lan.feed(0, Event::Start);
    lan.feed(1, Event::Start);
    lan.run_until(ms(10_500));
    let t = lan.at();
    lan.feed(0, Event::Stop);
    assert_eq!(
        lan.actions(0, t, t),
        vec![
            (
                t,
                Action::SendAdvert {
                    priority: 0,
                    to: mc()
                }
            ),
            (t, Action::ReleaseVips),
            (
                t,
                Action::Notify {
                    state: NotifyState::Stop,
                    priority: 150
                }
            ),
        ]
    );
    assert_eq!(lan.nodes[0].state(), State::Stopped);
    assert_eq!(lan.nodes[0].next_deadline(), None);
    lan.up[0] = false;
    lan.run_until(ms(20_000));
    let takeover = t + SKEW_100;
    assert_eq!(
        lan.actions(1, t, takeover),
        became_master(100)
            .into_iter()
            .map(|a| (takeover, a))
            .collect::<Vec<_>>()
    );
}

#[test]
fn master_answers_priority_zero_at_once() {
    let mut a = Instance::new(cfg("a", 150, 1));
    let b = Instance::new(cfg("b", 100, 2));
    let t = Instant::now();
    a.handle(Event::Start, t);
    a.handle(Event::TimerFired, t + ms(3000) + SKEW_150);
    assert_eq!(a.state(), State::Master);
    let t2 = t + ms(3800);
    assert_eq!(
        a.handle(adv(&b, 0), t2),
        vec![Action::SendAdvert {
            priority: 150,
            to: mc()
        }]
    );
    // The advert timer restarts from there.
    assert_eq!(a.next_deadline(), Some(t2 + ms(1000)));
}

#[test]
fn preemption_by_higher_priority() {
    let mut lan = Lan::new(vec![cfg("a", 150, 1), cfg("b", 100, 2)]);
    // b alone first.
    lan.feed(1, Event::Start);
    lan.run_until(ms(10_000));
    assert_eq!(lan.nodes[1].state(), State::Master);
    // a arrives, discards b's lower adverts and takes over by timer.
    let t = lan.at();
    lan.feed(0, Event::Start);
    lan.run_until(ms(20_000));
    let takeover = t + ms(3000) + SKEW_150;
    assert_eq!(
        lan.actions(0, t + us(1), takeover),
        became_master(150)
            .into_iter()
            .map(|a| (takeover, a))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        lan.actions(1, takeover, takeover),
        lost_master(100)
            .into_iter()
            .map(|a| (takeover, a))
            .collect::<Vec<_>>()
    );
    assert_eq!(lan.nodes[1].state(), State::Backup);
}

#[test]
fn nopreempt_keeps_the_lower_master() {
    let mut a = cfg("a", 150, 1);
    a.nopreempt = true;
    let mut lan = Lan::new(vec![a, cfg("b", 100, 2)]);
    lan.feed(1, Event::Start);
    lan.run_until(ms(10_000));
    let t = lan.at();
    lan.feed(0, Event::Start);
    lan.run_until(ms(60_000));
    assert_eq!(lan.nodes[0].state(), State::Backup);
    assert_eq!(lan.nodes[1].state(), State::Master);
    assert_eq!(lan.actions(0, t + us(1), ms(60_000)), vec![]);
    // But it takes over when the master goes.
    lan.feed(1, Event::Stop);
    lan.up[1] = false;
    let t = lan.at();
    lan.run_until(ms(70_000));
    assert_eq!(lan.nodes[0].state(), State::Master);
    assert_eq!(
        lan.actions(0, t, ms(70_000))[0],
        (
            t + SKEW_150,
            Action::SendAdvert {
                priority: 150,
                to: mc()
            }
        )
    );
}

#[test]
fn preempt_delay_defers_takeover() {
    let mut a = cfg("a", 150, 1);
    a.preempt_delay = Duration::from_secs(10);
    let mut lan = Lan::new(vec![a, cfg("b", 100, 2)]);
    lan.feed(1, Event::Start);
    lan.run_until(ms(10_000));
    // b sends adverts at 3.609375 + k s.
    let t = lan.at();
    lan.feed(0, Event::Start);
    lan.run_until(ms(60_000));
    // The first advert a sees (at 10.609375) starts the delay; adverts
    // up to 20.609375 are still accepted (the delay runs while
    // preempt_time > now, so the one at exactly 20.609375 is not);
    // a takes over master-down after the last accepted one.
    let first = ms(10_000) + SKEW_100;
    let preempt_end = first + ms(10_000);
    let last_accepted = preempt_end - ms(1000);
    let takeover = last_accepted + ms(3000) + SKEW_150;
    assert!(takeover > t + ms(3000) + SKEW_150);
    let a_acts = lan.actions(0, t + us(1), ms(60_000));
    assert_eq!(
        a_acts[..4].to_vec(),
        became_master(150)
            .into_iter()
            .map(|a| (takeover, a))
            .collect::<Vec<_>>()
    );
    assert_eq!(lan.nodes[1].state(), State::Backup);
}

#[test]
fn equal_priority_higher_address_wins() {
    // Two masters at the same priority (a partition heals).
    let t = Instant::now();
    let mut a = Instance::new(cfg("a", 100, 1));
    let mut b = Instance::new(cfg("b", 100, 2));
    for i in [&mut a, &mut b] {
        i.handle(Event::Start, t);
        i.handle(Event::TimerFired, t + ms(3000) + SKEW_100);
        assert_eq!(i.state(), State::Master);
    }
    let t2 = t + ms(3700);
    // b (higher address) hears a: lower, forces a new election.
    assert_eq!(
        b.handle(adv(&a, 100), t2),
        vec![
            Action::SendAdvert {
                priority: 100,
                to: mc()
            },
            Action::SendGarp { count: 5 },
        ]
    );
    // a hears b: same priority, higher address → backup.
    assert_eq!(a.handle(adv(&b, 100), t2), lost_master(100));
    assert_eq!(a.state(), State::Backup);
    assert_eq!(a.next_deadline(), Some(t2 + ms(3000) + SKEW_100));
    // b's delayed lower-priority GARP burst follows garp_lower_prio_delay.
    assert_eq!(b.next_deadline(), Some(t2 + ms(1000)));
    let mut garps = Vec::new();
    let mut now = t2;
    while now < t2 + ms(5000) {
        now = b.next_deadline().unwrap();
        garps.extend(b.handle(Event::TimerFired, now));
    }
    assert_eq!(garps.last(), Some(&Action::SendGarp { count: 5 }));
    assert_eq!(now, t2 + ms(5000));
}

#[test]
fn negative_script_weight_moves_mastership() {
    let mut a = cfg("a", 150, 1);
    a.tracks.push(TrackSpec {
        kind: TrackKind::Script,
        name: "chk".into(),
        weight: -60,
        reverse: false,
        status: TrackStatus::Init,
    });
    let mut lan = Lan::new(vec![a, cfg("b", 100, 2)]);
    lan.feed(0, Event::Start);
    lan.feed(1, Event::Start);
    // First result OK: no change from Init (a negative weight counts
    // only while failing).
    lan.feed(
        0,
        Event::TrackUp {
            kind: TrackKind::Script,
            name: "chk".into(),
        },
    );
    lan.run_until(ms(10_000));
    assert_eq!(lan.nodes[0].state(), State::Master);
    assert_eq!(lan.nodes[0].effective_priority(), 150);
    // The script fails: 150 - 60 = 90 < 100.
    let t = ms(10_200);
    lan.run_until(t);
    lan.feed(
        0,
        Event::TrackDown {
            kind: TrackKind::Script,
            name: "chk".into(),
        },
    );
    assert_eq!(
        lan.actions(0, t, t),
        vec![(t, Action::PriorityChanged { from: 150, to: 90 })]
    );
    let last_150 = lan
        .last(
            0,
            &Action::SendAdvert {
                priority: 150,
                to: mc(),
            },
        )
        .unwrap();
    lan.run_until(ms(30_000));
    // b discards the 90 adverts and takes over master-down after a's
    // last 150 advert; a then yields.
    let takeover = last_150 + ms(3000) + SKEW_100;
    assert_eq!(
        lan.actions(1, t, takeover),
        became_master(100)
            .into_iter()
            .map(|a| (takeover, a))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        lan.actions(0, takeover, takeover),
        lost_master(90)
            .into_iter()
            .map(|a| (takeover, a))
            .collect::<Vec<_>>()
    );
    // Script OK again: back to 150, a preempts.
    let t = lan.at();
    lan.feed(
        0,
        Event::TrackUp {
            kind: TrackKind::Script,
            name: "chk".into(),
        },
    );
    lan.run_until(ms(40_000));
    assert_eq!(lan.nodes[0].state(), State::Master);
    assert_eq!(lan.nodes[1].state(), State::Backup);
    assert_eq!(
        lan.actions(0, t, t),
        vec![(t, Action::PriorityChanged { from: 90, to: 150 })]
    );
}

#[test]
fn backup_priority_change_moves_the_timer() {
    let mut c = cfg("a", 100, 1);
    c.tracks.push(TrackSpec {
        kind: TrackKind::Interface,
        name: "eth1".into(),
        weight: 50,
        reverse: false,
        status: TrackStatus::Up,
    });
    let mut a = Instance::new(c);
    let t = Instant::now();
    a.handle(Event::Start, t);
    assert_eq!(a.effective_priority(), 150);
    assert_eq!(a.next_deadline(), Some(t + ms(3000) + SKEW_150));
    let acts = a.handle(
        Event::TrackDown {
            kind: TrackKind::Interface,
            name: "eth1".into(),
        },
        t + ms(1000),
    );
    assert_eq!(acts, vec![Action::PriorityChanged { from: 150, to: 100 }]);
    assert_eq!(a.next_deadline(), Some(t + ms(3000) + SKEW_100));
}

#[test]
fn priority_is_clamped_and_owner_fixed() {
    let mut c = cfg("a", 250, 1);
    c.tracks.push(TrackSpec {
        kind: TrackKind::Script,
        name: "up".into(),
        weight: 50,
        reverse: false,
        status: TrackStatus::Up,
    });
    assert_eq!(Instance::new(c.clone()).effective_priority(), 254);
    c.priority = 10;
    c.tracks[0].weight = -50;
    c.tracks[0].status = TrackStatus::Down;
    assert_eq!(Instance::new(c.clone()).effective_priority(), 1);
    // reverse: a failing script with weight -50 reverse adds 50.
    c.tracks[0].reverse = true;
    assert_eq!(Instance::new(c.clone()).effective_priority(), 60);
    c.priority = 255;
    assert_eq!(Instance::new(c).effective_priority(), 255);
}

#[test]
fn v2_interval_mismatch_is_dropped() {
    let mut b = cfg("b", 100, 2);
    b.advert_int = Duration::from_secs(2);
    let mut lan = Lan::new(vec![cfg("a", 150, 1), b]);
    lan.feed(0, Event::Start);
    lan.feed(1, Event::Start);
    lan.run_until(ms(20_000));
    // b ignores a's 1 s adverts and comes up as master after its own
    // master-down interval (3 × 2 s + skew); then a (higher priority)
    // drops b's 2 s adverts too, so both stay master.
    let t = ms(6000) + SKEW_100;
    assert_eq!(
        lan.actions(1, t, t),
        became_master(100)
            .into_iter()
            .map(|a| (t, a))
            .collect::<Vec<_>>()
    );
    assert_eq!(lan.nodes[0].state(), State::Master);
    assert_eq!(lan.nodes[1].state(), State::Master);
}

#[test]
fn v3_backup_adopts_the_master_interval() {
    let mut lan = Lan::new(vec![v3(cfg("a", 150, 1), 500), v3(cfg("b", 100, 2), 1000)]);
    lan.feed(0, Event::Start);
    lan.feed(1, Event::Start);
    lan.run_until(ms(10_000));
    assert_eq!(lan.nodes[0].state(), State::Master);
    assert_eq!(lan.nodes[1].master_adver_int(), ms(500));
    // Master down with the adopted interval: 3 × 0.5 s + 156 × 50 /
    // 256 cs.
    assert_eq!(lan.nodes[1].master_down_interval(), ms(1500) + us(304_687));
    let last = lan
        .last(
            0,
            &Action::SendAdvert {
                priority: 150,
                to: mc(),
            },
        )
        .unwrap();
    lan.up[0] = false;
    lan.run_until(ms(20_000));
    let takeover = last + ms(1500) + us(304_687);
    assert_eq!(
        lan.actions(1, ms(10_000), ms(20_000))[..4].to_vec(),
        became_master(100)
            .into_iter()
            .map(|a| (takeover, a))
            .collect::<Vec<_>>()
    );
    // As master it advertises at its own 1 s interval again.
    assert_eq!(lan.nodes[1].master_adver_int(), ms(1000));
    let sends: Vec<_> = lan
        .actions(1, takeover, ms(20_000))
        .into_iter()
        .filter(|(_, a)| matches!(a, Action::SendAdvert { .. }))
        .map(|(t, _)| t)
        .collect();
    assert_eq!(sends[1] - sends[0], ms(1000));
}

#[test]
fn garp_bursts() {
    let mut c = cfg("a", 150, 1);
    c.garp.master_repeat = 3;
    c.garp.master_delay = Duration::from_secs(2);
    c.garp.master_refresh = Duration::from_millis(2500);
    c.garp.master_refresh_repeat = 1;
    let mut a = Instance::new(c.clone());
    let t = Instant::now();
    a.handle(Event::Start, t);
    let tm = t + ms(3000) + SKEW_150;
    let mut log = Vec::new();
    let mut now = t;
    while now < tm + ms(6000) {
        now = a.next_deadline().unwrap();
        for x in a.handle(Event::TimerFired, now) {
            if matches!(x, Action::SendGarp { .. }) {
                log.push((now - tm, x));
            }
        }
    }
    assert_eq!(
        log,
        vec![
            (Duration::ZERO, Action::SendGarp { count: 3 }),
            // garp_master_delay.
            (ms(2000), Action::SendGarp { count: 3 }),
            // Refresh: checked at advert time once 2.5 s have passed.
            (ms(3000), Action::SendGarp { count: 1 }),
            (ms(6000), Action::SendGarp { count: 1 }),
        ]
    );
    // No second burst with garp_master_delay 0.
    c.garp = GarpSettings {
        master_delay: Duration::ZERO,
        ..GarpSettings::default()
    };
    let mut a = Instance::new(c);
    a.handle(Event::Start, t);
    let first = a.handle(Event::TimerFired, tm);
    assert_eq!(first, became_master(150));
    assert_eq!(a.next_deadline(), Some(tm + ms(1000)));
}

#[test]
fn delayed_garp_cancelled_when_leaving_master() {
    let mut a = Instance::new(cfg("a", 100, 1));
    let b = Instance::new(cfg("b", 150, 2));
    let t = Instant::now();
    a.handle(Event::Start, t);
    let tm = t + ms(3000) + SKEW_100;
    a.handle(Event::TimerFired, tm);
    assert_eq!(a.handle(adv(&b, 150), tm + ms(100)), lost_master(100));
    // Only the master-down timer remains.
    assert_eq!(a.next_deadline(), Some(tm + ms(100) + ms(3000) + SKEW_100));
}

#[test]
fn start_state_master() {
    let t = Instant::now();
    // Address owner with state MASTER: master at once.
    let mut c = cfg("a", 255, 1);
    c.initial_master = true;
    let mut a = Instance::new(c);
    assert_eq!(a.handle(Event::Start, t), became_master(255));
    assert_eq!(a.state(), State::Master);
    // state MASTER at 200: BACKUP, master by timer after the full
    // master-down interval.
    let mut c = cfg("a", 200, 1);
    c.initial_master = true;
    let mut a = Instance::new(c);
    assert_eq!(a.handle(Event::Start, t), started_backup(200));
    let down = ms(3000) + us(56 * 1_000_000 / 256);
    assert_eq!(a.next_deadline(), Some(t + down));
    assert_eq!(a.handle(Event::TimerFired, t + down), became_master(200));
}

#[test]
fn a_process_handed_over_to_resumes_master_at_once() {
    // `ferrovs upgrade`: the old process was MASTER at 150 and sent no
    // priority 0; the new one takes over at once instead of waiting the
    // master-down interval, during which the peer would take the VIPs.
    let t = Instant::now();
    let mut c = cfg("a", 150, 1);
    c.resume_master = true;
    let mut a = Instance::new(c);
    assert_eq!(a.handle(Event::Start, t), became_master(150));
    assert_eq!(a.state(), State::Master);
    // Then as any master: a higher priority takes the VIPs from it.
    let b = Instance::new(cfg("b", 200, 2));
    assert_eq!(a.handle(adv(&b, 200), t + ms(100)), lost_master(150));
}

#[test]
fn unweighted_tracking_faults() {
    let mut c = cfg("a", 150, 1);
    c.tracks.push(TrackSpec {
        kind: TrackKind::Interface,
        name: "eth0".into(),
        weight: 0,
        reverse: false,
        status: TrackStatus::Up,
    });
    let mut a = Instance::new(c);
    let t = Instant::now();
    a.handle(Event::Start, t);
    let tm = t + ms(3000) + SKEW_150;
    a.handle(Event::TimerFired, tm);
    let down = Event::TrackDown {
        kind: TrackKind::Interface,
        name: "eth0".into(),
    };
    let up = Event::TrackUp {
        kind: TrackKind::Interface,
        name: "eth0".into(),
    };
    assert_eq!(
        a.handle(down.clone(), tm + ms(10)),
        vec![
            Action::SendAdvert {
                priority: 0,
                to: mc()
            },
            Action::ReleaseVips,
            Action::BecomeFault,
            Action::Notify {
                state: NotifyState::Fault,
                priority: 150
            },
        ]
    );
    assert_eq!(a.next_deadline(), None);
    // Adverts are ignored in FAULT; a second down changes nothing.
    assert_eq!(a.handle(down, tm + ms(20)), vec![]);
    let b = Instance::new(cfg("b", 100, 2));
    assert_eq!(a.handle(adv(&b, 100), tm + ms(30)), vec![]);
    let t_up = tm + ms(40);
    assert_eq!(a.handle(up, t_up), started_backup(150));
    assert_eq!(a.next_deadline(), Some(t_up + ms(3000) + SKEW_150));
    // An untracked name is ignored.
    assert_eq!(
        a.handle(
            Event::TrackDown {
                kind: TrackKind::Interface,
                name: "eth9".into()
            },
            t_up
        ),
        vec![]
    );
}

#[test]
fn unweighted_script_pending_starts_in_fault_without_notify() {
    let mut c = cfg("a", 150, 1);
    c.tracks.push(TrackSpec {
        kind: TrackKind::Script,
        name: "chk".into(),
        weight: 0,
        reverse: false,
        status: TrackStatus::Init,
    });
    let mut a = Instance::new(c.clone());
    let t = Instant::now();
    assert_eq!(a.handle(Event::Start, t), vec![Action::BecomeFault]);
    let ok = Event::TrackUp {
        kind: TrackKind::Script,
        name: "chk".into(),
    };
    assert_eq!(a.handle(ok, t + ms(5)), started_backup(150));
    // First result KO: FAULT with its notify.
    let mut a = Instance::new(c.clone());
    a.handle(Event::Start, t);
    let ko = Event::TrackDown {
        kind: TrackKind::Script,
        name: "chk".into(),
    };
    assert_eq!(
        a.handle(ko, t + ms(5)),
        vec![Action::Notify {
            state: NotifyState::Fault,
            priority: 150
        }]
    );
    // reverse: the script succeeding is the failure.
    c.tracks[0].reverse = true;
    c.tracks[0].status = TrackStatus::Up;
    let mut a = Instance::new(c);
    assert_eq!(
        a.handle(Event::Start, t),
        vec![
            Action::BecomeFault,
            Action::Notify {
                state: NotifyState::Fault,
                priority: 150
            }
        ]
    );
}

#[test]
fn invalid_adverts_leave_the_timer_alone() {
    let mut a = Instance::new(cfg("a", 100, 1));
    let t = Instant::now();
    a.handle(Event::Start, t);
    let deadline = a.next_deadline();
    let mut other = cfg("b", 150, 2);
    other.auth_pass = Some(pass_data("wrong"));
    let b = Instance::new(other);
    assert_eq!(a.handle(adv(&b, 150), t + ms(500)), vec![]);
    assert_eq!(a.next_deadline(), deadline);
    // TTL 254 on multicast.
    let good = Instance::new(cfg("b", 150, 2));
    let Event::AdvertReceived { rx, advert } = adv(&good, 150) else {
        unreachable!()
    };
    a.handle(
        Event::AdvertReceived {
            rx: RxInfo { ttl: 254, ..rx },
            advert: advert.clone(),
        },
        t + ms(600),
    );
    assert_eq!(a.next_deadline(), deadline);
    // Another VRID.
    let mut wrong_vrid = advert.clone();
    wrong_vrid.vrid = 52;
    a.handle(
        Event::AdvertReceived {
            rx,
            advert: wrong_vrid,
        },
        t + ms(700),
    );
    assert_eq!(a.next_deadline(), deadline);
    // A good one resets it.
    a.handle(Event::AdvertReceived { rx, advert }, t + ms(800));
    assert_eq!(a.next_deadline(), Some(t + ms(800) + ms(3000) + SKEW_100));
}

#[test]
fn owner_conflict_lowers_priority() {
    let mut c = cfg("a", 255, 1);
    c.initial_master = true;
    let mut a = Instance::new(c.clone());
    let t = Instant::now();
    a.handle(Event::Start, t);
    c.primary_ip = ip(2);
    let b = Instance::new(c);
    // Equal priority 255 from a higher address: we drop to 254 and
    // yield.
    assert_eq!(a.handle(adv(&b, 255), t + ms(100)), lost_master(254));
}

#[test]
fn unicast_adverts_encode_per_peer() {
    let mut c = v3(cfg("a", 100, 1), 1000);
    c.target = AdvertTarget::Unicast(vec![ip(2), ip(3)]);
    let a = Instance::new(c);
    let out = a.encode_adverts(100, &a.config().target.clone());
    assert_eq!(out.len(), 2);
    for (dst, bytes) in out {
        let p = Advert::parse(&bytes, ip(1), dst).unwrap();
        assert_eq!(p.priority, 100);
        assert_eq!(p.interval, 100);
    }
}

#[test]
fn reconfigure_keeps_the_state_and_applies_the_settings() {
    let mut lan = Lan::new(vec![cfg("a", 150, 1), cfg("b", 100, 2)]);
    lan.feed(0, Event::Start);
    lan.feed(1, Event::Start);
    lan.run_until(ms(10_000));
    assert_eq!(lan.nodes[0].state(), State::Master);
    assert_eq!(lan.nodes[1].state(), State::Backup);

    // The same settings again: nothing to do, no transition.
    assert!(same_settings(lan.nodes[0].config(), &cfg("a", 150, 1)));
    let acts = lan.nodes[1].reconfigure(cfg("b", 100, 2), lan.now);
    assert_eq!(acts, vec![]);
    assert_eq!(lan.nodes[1].state(), State::Backup);

    // The master gets a lower priority and a second VIP: it stays MASTER
    // and adverts at once with the new settings.
    let mut c = cfg("a", 120, 1);
    c.vips.push(ip(101));
    assert!(!same_settings(lan.nodes[0].config(), &c));
    assert_eq!(
        vip_changes(&lan.nodes[0].config().vips, &c.vips),
        (vec![], vec![ip(101)])
    );
    let acts = lan.nodes[0].reconfigure(c, lan.now);
    assert_eq!(
        acts,
        vec![
            Action::PriorityChanged { from: 150, to: 120 },
            Action::SendAdvert {
                priority: 120,
                to: mc()
            }
        ]
    );
    assert_eq!(lan.nodes[0].state(), State::Master);
    assert_eq!(lan.nodes[0].advert(120).addresses, vec![VIP, ip(101)]);

    // The backup is given a higher priority (and the VIP list its peer
    // now adverts, which keepalived checks): with preemption it takes over
    // as a running backup would.
    let mut c = cfg("b", 200, 2);
    c.vips.push(ip(101));
    let acts = lan.nodes[1].reconfigure(c, lan.now);
    assert_eq!(acts, vec![Action::PriorityChanged { from: 100, to: 200 }]);
    let t = lan.at();
    lan.run_until(t + ms(10_000));
    assert_eq!(lan.nodes[1].state(), State::Master);
    assert_eq!(lan.nodes[0].state(), State::Backup);
}

#[test]
fn reconfigure_keeps_the_status_of_tracked_objects() {
    let mut c = cfg("a", 100, 1);
    c.tracks.push(TrackSpec {
        kind: TrackKind::Interface,
        name: "eth1".into(),
        weight: -30,
        reverse: false,
        status: TrackStatus::Up,
    });
    let mut i = Instance::new(c.clone());
    let t0 = Instant::now();
    i.handle(Event::Start, t0);
    i.handle(
        Event::TrackDown {
            kind: TrackKind::Interface,
            name: "eth1".into(),
        },
        t0,
    );
    assert_eq!(i.effective_priority(), 70);
    // The reloaded file says the same, with the tracker's initial status:
    // the interface is still down.
    assert!(same_settings(i.config(), &c));
    c.priority = 110;
    let acts = i.reconfigure(c, t0);
    assert_eq!(acts, vec![Action::PriorityChanged { from: 70, to: 80 }]);
    assert_eq!(i.tracks()[0].status, TrackStatus::Down);
}

/// keepalived's `check_unicast_src` (always on): a MASTER of a unicast
/// instance keeps its VIPs when a stranger, or its peer at a routed TTL,
/// adverts priority 254; the peer itself at TTL 255 is obeyed.
#[test]
fn unicast_adverts_only_from_peers_at_their_ttl() {
    let mut c = cfg("a", 100, 1);
    c.target = AdvertTarget::Unicast(vec![ip(2)]);
    c.peers = vec![PeerCheck {
        addr: ip(2),
        min_ttl: 255,
        max_ttl: 255,
    }];
    let mut a = Instance::new(c.clone());
    let t0 = Instant::now();
    a.handle(Event::Start, t0);
    let t = a.next_deadline().unwrap();
    a.handle(Event::TimerFired, t);
    assert_eq!(a.state(), State::Master);
    let forged = |src: IpAddr, ttl: u8| {
        let mut pc = c.clone();
        pc.primary_ip = src;
        let p = Instance::new(pc);
        let bytes = p.advert(254).encode(src, ip(1));
        Event::AdvertReceived {
            rx: RxInfo {
                src,
                dst: ip(1),
                ttl,
            },
            advert: Advert::parse(&bytes, src, ip(1)).unwrap(),
        }
    };
    assert_eq!(a.handle(forged(ip(66), 255), t + ms(10)), vec![]);
    assert_eq!(a.state(), State::Master);
    assert_eq!(a.handle(forged(ip(2), 64), t + ms(20)), vec![]);
    assert_eq!(a.state(), State::Master);
    assert_eq!(a.handle(forged(ip(2), 255), t + ms(30)), lost_master(100));
}

/// An IPv6 instance (RFC 5798 §5.1.2): its adverts carry 16-byte
/// addresses from its link-local address; a backup takes over after
/// Master_Down_Interval as an IPv4 one does and holds its IPv6 VIPs
/// (announced with unsolicited NAs through `SendGarp`); forged adverts with
/// a hop limit below 255 or a global source are refused and counted, and a
/// real one from the higher-priority peer's link-local address is obeyed.
#[test]
fn ipv6_instance_fails_over_and_refuses_forged_adverts() {
    let ll = |last: u16| IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, last));
    let group = IpAddr::V6(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12));
    let vip6 = IpAddr::V6(Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0x100));
    let six = |prio: u8, last: u16| {
        let mut c = v3(cfg("v6", prio, 1), 1000);
        c.vips = vec![vip6];
        c.primary_ip = ll(last);
        c.target = AdvertTarget::Multicast(group);
        c
    };
    let mut b = Instance::new(six(100, 2));
    let t0 = Instant::now();
    assert_eq!(b.handle(Event::Start, t0), started_backup(100));
    // Master_Down_Interval = 3 × 1 s + (256 − 100) × 1 s / 256.
    let down = b.master_down_interval();
    assert_eq!(down, ms(3000) + us(609_375));
    let acts = b.handle(Event::TimerFired, t0 + down);
    assert_eq!(
        acts[0],
        Action::SendAdvert {
            priority: 100,
            to: AdvertTarget::Multicast(group)
        }
    );
    assert!(acts.contains(&Action::BecomeMaster));
    assert!(acts.contains(&Action::SendGarp { count: 5 }));
    assert_eq!(b.config().held(), vec![vip6]);
    // What goes on the wire: one copy to ff02::12, a v3 message with the
    // 16-byte VIP, summed over the IPv6 pseudo-header from fe80::2.
    let sent = b.encode_adverts(100, &b.config().target.clone());
    assert_eq!(sent.len(), 1);
    let (dst, msg) = &sent[0];
    assert_eq!(*dst, group);
    assert_eq!(msg.len(), 8 + 16);
    let back = Advert::parse(msg, ll(2), group).unwrap();
    assert_eq!(back.addresses, vec![vip6]);

    // A higher-priority peer's advert, as received.
    let peer = Instance::new(six(200, 1));
    let real = |src: IpAddr, ttl: u8| {
        let bytes = peer.advert(200).encode(src, group);
        Event::AdvertReceived {
            rx: RxInfo {
                src,
                dst: group,
                ttl,
            },
            advert: Advert::parse(&bytes, src, group).unwrap(),
        }
    };
    let t = t0 + down + ms(10);
    assert_eq!(b.handle(real(ll(1), 254), t), vec![]);
    assert_eq!(b.state(), State::Master);
    let global = IpAddr::V6(Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0x66));
    assert_eq!(b.handle(real(global, 255), t), vec![]);
    assert_eq!(b.state(), State::Master);
    assert_eq!(b.refused_adverts(), 2);
    assert_eq!(b.handle(real(ll(1), 255), t + ms(10)), lost_master(100));
    assert_eq!(b.refused_adverts(), 2);
}
