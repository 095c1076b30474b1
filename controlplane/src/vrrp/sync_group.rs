//! `vrrp_sync_group`: member instances that change state together, as
//! keepalived's vrrp_sync.c and its transition matrix do it:
//!
//! - a member leaving MASTER for BACKUP takes the others to BACKUP;
//! - a member becoming MASTER takes the others to MASTER, but a member
//!   whose master-down timer runs out becomes MASTER only when the group
//!   is MASTER already or every other member wants MASTER too ("prefer
//!   backup state to avoid thrashing");
//! - a member that fails its own tracking takes the others to FAULT, and
//!   the group comes up again (to BACKUP) only when no member has a fault
//!   of its own left.
//!
//! Group notifies (`GROUP NAME STATE 0`) go out when the group's state
//! changes, after the members' own.

use super::instance::{Action, Event, GroupView, Instance, State, Want};
use super::notify::NotifyState;
use std::time::Instant;
use tracing::info;

/// A sync group's state: the members' states, plus INIT while waiting for
/// scripts.
pub type GroupState = State;

/// An action of one member, or the group's own notify.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyncAction {
    Member {
        index: usize,
        action: Action,
    },
    /// Run the group's notify scripts for `state`.
    Notify {
        state: NotifyState,
    },
}

#[derive(Clone, Debug)]
pub struct SyncGroup {
    name: String,
    members: Vec<Instance>,
    state: State,
}

impl SyncGroup {
    pub fn new(name: &str, members: Vec<Instance>) -> SyncGroup {
        if members.len() == 1 {
            info!("Sync group {name} has only 1 virtual router(s) - this probably isn't what you want");
        }
        SyncGroup {
            name: name.to_string(),
            members,
            state: State::Init,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn state(&self) -> State {
        self.state
    }
    pub fn members(&self) -> &[Instance] {
        &self.members
    }
    /// The members, for a reload's reconfiguration (the group's own state
    /// follows from theirs at the next event).
    pub fn members_mut(&mut self) -> &mut [Instance] {
        &mut self.members
    }
    pub fn member(&self, index: usize) -> &Instance {
        &self.members[index]
    }
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.members.iter().position(|m| m.name() == name)
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.members
            .iter()
            .filter_map(Instance::next_deadline)
            .min()
    }

    fn view(&self, index: usize) -> GroupView {
        let others = || {
            self.members
                .iter()
                .enumerate()
                .filter(move |(i, _)| *i != index)
                .map(|(_, m)| m)
        };
        GroupView {
            state: self.state,
            others_want_master: others().all(|m| m.want() == Want::Master),
            others_faulted: others().any(Instance::own_fault),
            others_init: others().any(Instance::init_pending),
        }
    }

    fn set_state(&mut self, state: State, out: &mut Vec<SyncAction>) {
        if self.state == state {
            return;
        }
        info!(
            "VRRP_Group({}) Syncing instances to {state} state",
            self.name
        );
        self.state = state;
        let n = match state {
            State::Master => NotifyState::Master,
            State::Backup => NotifyState::Backup,
            State::Fault => NotifyState::Fault,
            State::Stopped => NotifyState::Stop,
            State::Init => return,
        };
        out.push(SyncAction::Notify { state: n });
    }

    fn push(out: &mut Vec<SyncAction>, index: usize, acts: Vec<Action>) {
        out.extend(
            acts.into_iter()
                .map(|action| SyncAction::Member { index, action }),
        );
    }

    /// Feeds an event: an advert goes to the member with its VRID, every
    /// other event to all members.
    pub fn handle(&mut self, event: Event, now: Instant) -> Vec<SyncAction> {
        match event {
            Event::Start => self.start(now),
            Event::Stop => {
                let mut out = Vec::new();
                for i in 0..self.members.len() {
                    let acts = self.members[i].handle_in(Event::Stop, now, None);
                    Self::push(&mut out, i, acts);
                }
                self.set_state(State::Stopped, &mut out);
                out
            }
            Event::AdvertReceived { ref advert, .. } => {
                let vrid = advert.vrid;
                match self.members.iter().position(|m| m.config().vrid == vrid) {
                    Some(i) => self.handle_member(i, event, now),
                    None => Vec::new(),
                }
            }
            Event::TimerFired => {
                let mut out = Vec::new();
                for i in 0..self.members.len() {
                    if self.members[i].next_deadline().is_some_and(|d| d <= now) {
                        out.extend(self.handle_member(i, Event::TimerFired, now));
                    }
                }
                out
            }
            Event::TrackUp { .. } | Event::TrackDown { .. } => {
                let mut out = Vec::new();
                for i in 0..self.members.len() {
                    out.extend(self.handle_member(i, event.clone(), now));
                }
                out
            }
        }
    }

    /// keepalived's vrrp_init_state for a group: the group starts MASTER
    /// only if every member is an address owner with `state MASTER`,
    /// FAULT if a member is down, INIT while members wait for scripts,
    /// else BACKUP; its notify goes out first (FAULT and BACKUP only).
    fn start(&mut self, now: Instant) -> Vec<SyncAction> {
        let mut out = Vec::new();
        if self.state != State::Init {
            return out;
        }
        let state = if self.members.iter().any(Instance::own_fault) {
            State::Fault
        } else if self.members.iter().any(Instance::init_pending) {
            State::Init
        } else if self.members.iter().all(|m| {
            (m.config().initial_master && m.config().priority == super::instance::PRIORITY_OWNER)
                || m.config().resume_master
        }) {
            State::Master
        } else {
            State::Backup
        };
        if matches!(state, State::Fault | State::Backup) {
            self.set_state(state, &mut out);
        } else {
            self.state = state;
        }
        for i in 0..self.members.len() {
            let view = self.view(i);
            let acts = self.members[i].handle_in(Event::Start, now, Some(&view));
            Self::push(&mut out, i, acts);
        }
        if state == State::Master {
            let mut notify = Vec::new();
            self.state = State::Init;
            self.set_state(State::Master, &mut notify);
            out.extend(notify);
        }
        out
    }

    /// Feeds an event to one member and applies the group's transitions.
    pub fn handle_member(&mut self, index: usize, event: Event, now: Instant) -> Vec<SyncAction> {
        let mut out = Vec::new();
        let view = self.view(index);
        let prev = self.members[index].state();
        let acts = self.members[index].handle_in(event, now, Some(&view));
        Self::push(&mut out, index, acts);
        let new = self.members[index].state();
        if self.members[index].own_fault() {
            if self.state != State::Fault {
                self.sync_fault(index, now, &mut out);
            }
        } else if new == State::Master && prev != State::Master {
            if self.state != State::Master {
                self.sync_master(index, now, &mut out);
            }
        } else if new == State::Backup && prev != State::Backup && self.state != State::Backup {
            self.sync_backup(index, now, &mut out);
        }
        out
    }

    fn others(&self, index: usize) -> impl Iterator<Item = usize> {
        (0..self.members.len()).filter(move |i| *i != index)
    }

    /// vrrp_sync_master. keepalived re-checks each member against the
    /// others' wishes, which with three or more members can leave one
    /// behind until its own timer; every member follows here.
    fn sync_master(&mut self, index: usize, now: Instant, out: &mut Vec<SyncAction>) {
        for i in self.others(index).collect::<Vec<_>>() {
            let m = &mut self.members[i];
            if m.own_fault() || m.init_pending() {
                continue;
            }
            let mut acts = Vec::new();
            m.sync_master(now, &mut acts);
            Self::push(out, i, acts);
        }
        self.set_state(State::Master, out);
    }

    /// vrrp_sync_backup.
    fn sync_backup(&mut self, index: usize, now: Instant, out: &mut Vec<SyncAction>) {
        for i in self.others(index).collect::<Vec<_>>() {
            let m = &mut self.members[i];
            if m.state() == State::Backup || m.own_fault() || m.init_pending() {
                continue;
            }
            let mut acts = Vec::new();
            m.sync_backup(now, &mut acts);
            Self::push(out, i, acts);
        }
        self.set_state(State::Backup, out);
    }

    /// vrrp_sync_fault.
    fn sync_fault(&mut self, index: usize, now: Instant, out: &mut Vec<SyncAction>) {
        for i in self.others(index).collect::<Vec<_>>() {
            let mut acts = Vec::new();
            self.members[i].sync_fault(now, &mut acts);
            Self::push(out, i, acts);
        }
        self.set_state(State::Fault, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vrrp::config::{AdvertTarget, TrackKind, TrackSpec, TrackStatus};
    use crate::vrrp::instance::tests::{adv, cfg, ip, mc, ms};
    use std::time::Duration;

    const SKEW_150: Duration = Duration::from_micros(414_062);
    const SKEW_100: Duration = Duration::from_micros(609_375);

    fn member(name: &str, vrid: u8, prio: u8, last: u8) -> Instance {
        let mut c = cfg(name, prio, last);
        c.vrid = vrid;
        c.tracks.push(TrackSpec {
            kind: TrackKind::Interface,
            name: format!("eth-{name}"),
            weight: 0,
            reverse: false,
            status: TrackStatus::Up,
        });
        Instance::new(c)
    }

    fn m(index: usize, action: Action) -> SyncAction {
        SyncAction::Member { index, action }
    }

    fn send(index: usize, priority: u8) -> SyncAction {
        m(index, Action::SendAdvert { priority, to: mc() })
    }

    fn notify(index: usize, state: NotifyState, priority: u8) -> SyncAction {
        m(index, Action::Notify { state, priority })
    }

    fn became_master(index: usize, prio: u8) -> Vec<SyncAction> {
        vec![
            send(index, prio),
            m(index, Action::BecomeMaster),
            m(index, Action::SendGarp { count: 5 }),
            notify(index, NotifyState::Master, prio),
        ]
    }

    fn started(prio: u8) -> (Instant, SyncGroup) {
        let t = Instant::now();
        let mut g = SyncGroup::new(
            "G1",
            vec![member("a", 51, prio, 1), member("b", 52, prio, 1)],
        );
        let out = g.handle(Event::Start, t);
        assert_eq!(
            out,
            vec![
                SyncAction::Notify {
                    state: NotifyState::Backup
                },
                m(0, Action::BecomeBackup),
                notify(0, NotifyState::Backup, prio),
                m(1, Action::BecomeBackup),
                notify(1, NotifyState::Backup, prio),
            ]
        );
        (t, g)
    }

    /// The group as master: both members' timers run out together.
    fn master_group() -> (Instant, SyncGroup) {
        let (t, mut g) = started(150);
        let tm = t + ms(3000) + SKEW_150;
        assert_eq!(g.next_deadline(), Some(tm));
        let out = g.handle(Event::TimerFired, tm);
        // a's timer runs out first but b does not want MASTER yet: a waits;
        // then b's runs out, b goes, and takes a with it.
        let mut want = became_master(1, 150);
        want.extend(became_master(0, 150));
        want.push(SyncAction::Notify {
            state: NotifyState::Master,
        });
        assert_eq!(out, want);
        assert_eq!(g.state(), State::Master);
        (tm, g)
    }

    #[test]
    fn members_go_master_together() {
        let (tm, g) = master_group();
        assert_eq!(g.member(0).state(), State::Master);
        assert_eq!(g.member(1).state(), State::Master);
        assert_eq!(g.next_deadline(), Some(tm + ms(1000)));
    }

    #[test]
    fn a_member_waits_while_another_hears_its_master() {
        let (t, mut g) = started(100);
        let peer_b = {
            let mut c = cfg("peer", 150, 2);
            c.vrid = 52;
            Instance::new(c)
        };
        let tm = t + ms(3000) + SKEW_100;
        // b keeps hearing a master on VRID 52.
        for k in 0..3 {
            g.handle(adv(&peer_b, 150), t + ms(1000 * k + 500));
        }
        // a's timer runs out: it may not go alone.
        assert_eq!(g.handle(Event::TimerFired, tm), vec![]);
        assert_eq!(g.member(0).state(), State::Backup);
        assert_eq!(g.member(1).state(), State::Backup);
        assert_eq!(g.state(), State::Backup);
    }

    #[test]
    fn one_member_losing_mastership_takes_the_others_to_backup() {
        let (tm, mut g) = master_group();
        let mut c = cfg("peer", 200, 2);
        c.vrid = 52;
        let peer = Instance::new(c);
        let t = tm + ms(300);
        let out = g.handle(adv(&peer, 200), t);
        assert_eq!(
            out,
            vec![
                m(1, Action::ReleaseVips),
                m(1, Action::BecomeBackup),
                notify(1, NotifyState::Backup, 150),
                m(0, Action::ReleaseVips),
                m(0, Action::BecomeBackup),
                notify(0, NotifyState::Backup, 150),
                SyncAction::Notify {
                    state: NotifyState::Backup
                },
            ]
        );
        assert_eq!(g.member(0).state(), State::Backup);
    }

    #[test]
    fn one_member_fault_takes_the_group_to_fault_and_back() {
        let (tm, mut g) = master_group();
        let t = tm + ms(200);
        let down = Event::TrackDown {
            kind: TrackKind::Interface,
            name: "eth-a".into(),
        };
        let out = g.handle(down, t);
        assert_eq!(
            out,
            vec![
                send(0, 0),
                m(0, Action::ReleaseVips),
                m(0, Action::BecomeFault),
                notify(0, NotifyState::Fault, 150),
                send(1, 0),
                m(1, Action::ReleaseVips),
                m(1, Action::BecomeFault),
                notify(1, NotifyState::Fault, 150),
                SyncAction::Notify {
                    state: NotifyState::Fault
                },
            ]
        );
        assert_eq!(g.state(), State::Fault);
        assert_eq!(g.next_deadline(), None);
        // b's own interface comes and goes: nothing while a is down.
        let t2 = t + ms(100);
        let b_down = Event::TrackDown {
            kind: TrackKind::Interface,
            name: "eth-b".into(),
        };
        let b_up = Event::TrackUp {
            kind: TrackKind::Interface,
            name: "eth-b".into(),
        };
        assert_eq!(g.handle(b_down, t2), vec![]);
        assert_eq!(g.handle(b_up, t2), vec![]);
        // a comes back: both to BACKUP.
        let t3 = t + ms(500);
        let up = Event::TrackUp {
            kind: TrackKind::Interface,
            name: "eth-a".into(),
        };
        assert_eq!(
            g.handle(up, t3),
            vec![
                m(0, Action::BecomeBackup),
                notify(0, NotifyState::Backup, 150),
                m(1, Action::BecomeBackup),
                notify(1, NotifyState::Backup, 150),
                SyncAction::Notify {
                    state: NotifyState::Backup
                },
            ]
        );
        assert_eq!(g.next_deadline(), Some(t3 + ms(3000) + SKEW_150));
    }

    #[test]
    fn both_faulted_comes_up_only_when_both_are_up() {
        let (t, mut g) = started(100);
        let ev = |up: bool, n: &str| {
            let name = n.to_string();
            if up {
                Event::TrackUp {
                    kind: TrackKind::Interface,
                    name,
                }
            } else {
                Event::TrackDown {
                    kind: TrackKind::Interface,
                    name,
                }
            }
        };
        g.handle(ev(false, "eth-a"), t);
        g.handle(ev(false, "eth-b"), t);
        assert_eq!(g.state(), State::Fault);
        assert_eq!(g.handle(ev(true, "eth-a"), t + ms(10)), vec![]);
        assert_eq!(g.member(0).state(), State::Fault);
        let out = g.handle(ev(true, "eth-b"), t + ms(20));
        assert_eq!(
            out.last(),
            Some(&SyncAction::Notify {
                state: NotifyState::Backup
            })
        );
        assert_eq!(g.member(0).state(), State::Backup);
        assert_eq!(g.member(1).state(), State::Backup);
    }

    #[test]
    fn state_master_member_waits_one_interval_in_a_backup_group() {
        // keepalived: a non-owner `state MASTER` member of a group held in
        // BACKUP arms adver_int + the smallest skew, not the full
        // master-down interval.
        let mut c = cfg("a", 150, 1);
        c.initial_master = true;
        let mut g = SyncGroup::new("G", vec![Instance::new(c), member("b", 52, 100, 1)]);
        let t = Instant::now();
        g.handle(Event::Start, t);
        assert_eq!(g.state(), State::Backup);
        assert_eq!(
            g.member(0).next_deadline(),
            Some(t + ms(1000) + Duration::from_micros(1_000_000 / 256))
        );
        assert_eq!(g.member(1).next_deadline(), Some(t + ms(3000) + SKEW_100));
        // Standalone, the same instance waits the full interval.
        let mut c = cfg("a", 150, 1);
        c.initial_master = true;
        let mut a = Instance::new(c);
        a.handle(Event::Start, t);
        assert_eq!(a.next_deadline(), Some(t + ms(3000) + SKEW_150));
    }

    #[test]
    fn stop_in_backup_only_notifies() {
        let (t, mut g) = started(100);
        assert_eq!(
            g.handle(Event::Stop, t + ms(10)),
            vec![
                notify(0, NotifyState::Stop, 100),
                notify(1, NotifyState::Stop, 100),
                SyncAction::Notify {
                    state: NotifyState::Stop
                },
            ]
        );
        assert_eq!(g.next_deadline(), None);
        assert_eq!(g.handle(Event::TimerFired, t + ms(10_000)), vec![]);
    }

    #[test]
    fn owner_group_starts_master_and_stop_sends_priority_zero() {
        let mk = |n: &str, vrid: u8| {
            let mut c = cfg(n, 255, 1);
            c.vrid = vrid;
            c.initial_master = true;
            c.target = AdvertTarget::Multicast(crate::vrrp::instance::tests::MCAST);
            Instance::new(c)
        };
        let mut g = SyncGroup::new("G", vec![mk("a", 1), mk("b", 2)]);
        let t = Instant::now();
        let out = g.handle(Event::Start, t);
        let mut want = became_master(0, 255);
        want.extend(became_master(1, 255));
        want.push(SyncAction::Notify {
            state: NotifyState::Master,
        });
        assert_eq!(out, want);
        let out = g.handle(Event::Stop, t + ms(100));
        assert_eq!(
            out,
            vec![
                send(0, 0),
                m(0, Action::ReleaseVips),
                notify(0, NotifyState::Stop, 255),
                send(1, 0),
                m(1, Action::ReleaseVips),
                notify(1, NotifyState::Stop, 255),
                SyncAction::Notify {
                    state: NotifyState::Stop
                },
            ]
        );
        assert_eq!(ip(1), g.member(0).config().primary_ip);
    }
}
