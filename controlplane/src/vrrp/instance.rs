//! One VRRP instance as a sans-IO state machine: RFC 5798 §6.4 (RFC 3768
//! §6.4 for v2) with keepalived 2.2's choices where the RFCs leave room.
//!
//! The caller feeds [`Event`]s with the current time and carries out the
//! returned [`Action`]s in order; it calls `handle(Event::TimerFired, now)`
//! when `now` reaches [`Instance::next_deadline`].
//!
//! keepalived behaviour reproduced here (from its vrrp.c, vrrp_scheduler.c,
//! vrrp_track.c, read for the purpose):
//!
//! - Start: an instance with `state MASTER` *and* priority 255 (the address
//!   owner) becomes master at once; every other instance, `state MASTER`
//!   included, starts as BACKUP and becomes master only when its
//!   Master_Down_Timer (3 × interval + skew) runs out without an advert.
//!   An instance whose unweighted tracked scripts have not reported yet
//!   starts in FAULT (without a notify) and leaves it on their first result.
//! - Skew and Master_Down_Interval use the effective priority; v3 uses the
//!   adopted master interval.
//! - BACKUP: priority 0 → Master_Down_Timer := Skew_Time. An advert is
//!   accepted (timer reset; v3: interval adopted) when nopreempt is set, its
//!   priority is ≥ ours, or a preempt_delay is running; otherwise it is
//!   discarded and the timer keeps running ("received lower priority …
//!   discarding"). There is no address tie-break in BACKUP.
//! - MASTER: priority 0 → advert at once. Lower priority, or equal priority
//!   and lower primary address → advert at once ("forcing new election")
//!   plus garp_lower_prio_repeat GARPs. Higher priority, or equal and higher
//!   address → BACKUP (no priority-0 advert).
//! - Invalid adverts (checksum, TTL, auth, v2 interval, VIP list) are
//!   ignored and change no timer.
//! - Effective priority = base + tracked weights, clamped to 1..254; the
//!   address owner's never changes and it ignores weighted tracking, as do
//!   members of a sync group (keepalived without `sgroup_tracking_weight`).
//!   A change while BACKUP moves the running timer by the difference of the
//!   master-down intervals.
//! - Going to FAULT from MASTER sends a priority-0 advert and releases the
//!   VIPs; leaving FAULT goes to BACKUP with a full master-down timer (the
//!   owner with `state MASTER` goes straight back to MASTER).

use super::config::{AdvertTarget, InstanceConfig, TrackKind, TrackSpec, TrackStatus};
use super::notify::NotifyState;
use super::packet::{Advert, Expect, PacketError, RxInfo, Version, AUTH_NONE, AUTH_PASS};
use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// The address owner's priority (RFC 5798 §5.2.4).
pub const PRIORITY_OWNER: u8 = 255;
/// Priority announcing that the master stops (RFC 5798 §5.2.4).
pub const PRIORITY_STOP: u8 = 0;
/// Adverts a backup misses before taking over (RFC 5798 §6.1).
const DOWN_TIMER_ADVERTS: u32 = 3;

/// Instance state. `Init` until [`Event::Start`], `Stopped` after
/// [`Event::Stop`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    Init,
    Backup,
    Master,
    Fault,
    Stopped,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Init => "INIT",
            State::Backup => "BACKUP",
            State::Master => "MASTER",
            State::Fault => "FAULT",
            State::Stopped => "STOP",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Inputs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Leave INIT (keepalived's `vrrp_init_state`).
    Start,
    /// Shutdown: a master sends priority 0 and releases its VIPs; every
    /// instance notifies STOP.
    Stop,
    /// An advert for our VRID, parsed by [`Advert::parse`] /
    /// [`Advert::parse_ipv4`] (checksum already verified).
    AdvertReceived { rx: RxInfo, advert: Advert },
    /// `now` reached [`Instance::next_deadline`].
    TimerFired,
    /// A tracked interface came up / a tracked script became OK.
    TrackUp { kind: TrackKind, name: String },
    /// A tracked interface went down / a tracked script became KO.
    TrackDown { kind: TrackKind, name: String },
}

/// Outputs, to be carried out in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send an advert with this priority (build it with
    /// [`Instance::advert`] / [`Instance::encode_adverts`]).
    SendAdvert { priority: u8, to: AdvertTarget },
    /// Take the VIPs: the dataplane answers ARP for them and forwards their
    /// traffic.
    BecomeMaster,
    /// Now BACKUP (VIPs, if held, were released by a preceding
    /// `ReleaseVips`).
    BecomeBackup,
    /// Now FAULT.
    BecomeFault,
    /// Stop answering for the VIPs.
    ReleaseVips,
    /// Send `count` gratuitous ARPs for each VIP (vrrp_garp_interval apart).
    SendGarp { count: u32 },
    /// Run the instance's notify scripts for `state`, `notify` with
    /// `INSTANCE NAME STATE PRIORITY`.
    Notify { state: NotifyState, priority: u8 },
    /// The effective priority changed (tracking).
    PriorityChanged { from: u8, to: u8 },
}

/// What a sync group tells a member about the others (keepalived's
/// `vrrp->sync` look-ups).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct GroupView {
    /// The group's state (keepalived's `sgroup->state`).
    pub state: State,
    /// Every other member wants MASTER (`vrrp_sync_can_goto_master`).
    pub others_want_master: bool,
    /// Another member is in FAULT through its own tracking
    /// (`num_member_fault`).
    pub others_faulted: bool,
    /// Another member waits for its first script results
    /// (`num_member_init`).
    pub others_init: bool,
}

/// What the instance would like to be (keepalived's `wantstate`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Want {
    Backup,
    Master,
    Fault,
}

/// One VRRP instance.
#[derive(Clone, Debug)]
pub struct Instance {
    cfg: InstanceConfig,
    state: State,
    want: Want,
    base_priority: u8,
    effective_priority: u8,
    /// RFC 5798 Master_Adver_Interval: ours, or the master's as adopted by
    /// a v3 backup.
    master_adver_int: Duration,
    /// The master-down timer length to arm next (keepalived's
    /// `ms_down_timer`).
    ms_down_timer: Duration,
    /// MASTER: next advert; BACKUP: master down.
    sands: Option<Instant>,
    /// MASTER: the second GARP burst (garp_master_delay).
    garp_at: Option<Instant>,
    /// MASTER: the delayed burst after a lower-priority advert.
    lower_garp_at: Option<Instant>,
    /// MASTER: next GARP refresh (garp_master_refresh), checked at advert
    /// time as keepalived does.
    garp_refresh_at: Option<Instant>,
    /// BACKUP: end of the running preempt delay.
    preempt_time: Option<Instant>,
    /// Source of the last advert seen as backup.
    master_ip: Option<IpAddr>,
    vips_set: bool,
    /// A FAULT notify went out since entering FAULT (an instance waiting
    /// for its scripts is in FAULT without one).
    fault_notified: bool,
    /// Adverts for our VRID that the receive checks refused.
    refused: u64,
}

impl Instance {
    pub fn new(cfg: InstanceConfig) -> Instance {
        let mut i = Instance {
            state: State::Init,
            want: if cfg.initial_master {
                Want::Master
            } else {
                Want::Backup
            },
            base_priority: cfg.priority,
            effective_priority: cfg.priority,
            master_adver_int: cfg.advert_int,
            ms_down_timer: Duration::ZERO,
            sands: None,
            garp_at: None,
            lower_garp_at: None,
            garp_refresh_at: None,
            preempt_time: None,
            master_ip: None,
            vips_set: false,
            fault_notified: false,
            refused: 0,
            cfg,
        };
        i.effective_priority = i.compute_priority();
        i.ms_down_timer = i.master_down_interval();
        i
    }

    pub fn name(&self) -> &str {
        &self.cfg.name
    }
    pub fn config(&self) -> &InstanceConfig {
        &self.cfg
    }
    pub fn state(&self) -> State {
        self.state
    }
    pub fn effective_priority(&self) -> u8 {
        self.effective_priority
    }
    /// The master's advert interval as this instance uses it.
    pub fn master_adver_int(&self) -> Duration {
        self.master_adver_int
    }
    /// Adverts for our VRID refused by the receive checks (keepalived's
    /// VRRP_PACKET_KO and _DROP), since the instance started.
    pub fn refused_adverts(&self) -> u64 {
        self.refused
    }
    /// Whether the VIPs are held (between `BecomeMaster` and `ReleaseVips`).
    pub fn vips_set(&self) -> bool {
        self.vips_set
    }
    pub fn tracks(&self) -> &[TrackSpec] {
        &self.cfg.tracks
    }
    pub(crate) fn want(&self) -> Want {
        self.want
    }
    /// Faulted through its own unweighted tracking.
    pub fn own_fault(&self) -> bool {
        self.cfg.tracks.iter().any(TrackSpec::failed)
    }
    /// Waiting for the first result of an unweighted script.
    pub fn init_pending(&self) -> bool {
        self.cfg.tracks.iter().any(TrackSpec::pending)
    }

    /// The earliest time at which `TimerFired` has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        [self.sands, self.garp_at, self.lower_garp_at]
            .into_iter()
            .flatten()
            .min()
    }

    /// Skew_Time for a priority value (keepalived's VRRP_TIMER_SKEW_CALC):
    /// v2 (256 − p)/256 s (RFC 3768 §6.1), v3 ((256 − p) ×
    /// Master_Adver_Interval)/256 (RFC 5798 §6.1), in microseconds.
    fn skew_for(&self, pri_val: u64) -> Duration {
        match self.cfg.version {
            Version::V2 => Duration::from_micros(pri_val * 1_000_000 / 256),
            Version::V3 => {
                let cs = (self.master_adver_int.as_millis() / 10) as u64;
                Duration::from_micros(pri_val * cs * 625 / 16)
            }
        }
    }

    /// Skew_Time at the effective priority.
    pub fn skew(&self) -> Duration {
        self.skew_for(256 - self.effective_priority as u64)
    }

    /// Master_Down_Interval = 3 × Master_Adver_Interval + Skew_Time.
    pub fn master_down_interval(&self) -> Duration {
        self.master_adver_int * DOWN_TIMER_ADVERTS + self.skew()
    }

    /// The advert this instance sends with `priority`.
    pub fn advert(&self, priority: u8) -> Advert {
        match self.cfg.version {
            Version::V2 => Advert {
                version: Version::V2,
                vrid: self.cfg.vrid,
                priority,
                interval: self.cfg.advert_int.as_secs().min(255) as u16,
                addresses: self.cfg.vips.clone(),
                auth_type: if self.cfg.auth_pass.is_some() {
                    AUTH_PASS
                } else {
                    AUTH_NONE
                },
                auth_data: self.cfg.auth_pass.unwrap_or([0; 8]),
            },
            Version::V3 => Advert::v3(
                self.cfg.vrid,
                priority,
                (self.cfg.advert_int.as_millis() / 10) as u16,
                self.cfg.vips.clone(),
            ),
        }
    }

    /// The VRRP messages to send for `SendAdvert { priority, to }`: one per
    /// destination, from our primary address.
    pub fn encode_adverts(&self, priority: u8, to: &AdvertTarget) -> Vec<(IpAddr, Vec<u8>)> {
        let a = self.advert(priority);
        to.destinations()
            .into_iter()
            .map(|d| (d, a.encode(self.cfg.primary_ip, d)))
            .collect()
    }

    fn send_advert(&self, priority: u8) -> Action {
        Action::SendAdvert {
            priority,
            to: self.cfg.target.clone(),
        }
    }

    fn notify(&mut self, state: NotifyState) -> Action {
        self.fault_notified = state == NotifyState::Fault;
        Action::Notify {
            state,
            priority: self.effective_priority,
        }
    }

    /// keepalived's vrrp_set_effective_priority: base + weights, 1..254.
    fn compute_priority(&self) -> u8 {
        if self.base_priority == PRIORITY_OWNER {
            return PRIORITY_OWNER;
        }
        let total: i32 = self.base_priority as i32
            + self
                .cfg
                .tracks
                .iter()
                .map(TrackSpec::contribution)
                .sum::<i32>();
        total.clamp(1, PRIORITY_OWNER as i32 - 1) as u8
    }

    /// Feeds one event. Standalone instances (not in a sync group).
    pub fn handle(&mut self, event: Event, now: Instant) -> Vec<Action> {
        self.handle_in(event, now, None)
    }

    pub(crate) fn handle_in(
        &mut self,
        event: Event,
        now: Instant,
        group: Option<&GroupView>,
    ) -> Vec<Action> {
        let mut out = Vec::new();
        match event {
            Event::Start => self.start(now, group, &mut out),
            Event::Stop => self.stop(&mut out),
            Event::AdvertReceived { rx, advert } => match self.state {
                State::Backup => self.backup_rx(&rx, &advert, now),
                State::Master => self.master_rx(&rx, &advert, now, &mut out),
                // keepalived ignores adverts in FAULT and INIT.
                _ => {}
            },
            Event::TimerFired => self.timer(now, group, &mut out),
            Event::TrackUp { kind, name } => {
                self.track(kind, &name, TrackStatus::Up, now, group, &mut out)
            }
            Event::TrackDown { kind, name } => {
                self.track(kind, &name, TrackStatus::Down, now, group, &mut out)
            }
        }
        out
    }

    fn start(&mut self, now: Instant, group: Option<&GroupView>, out: &mut Vec<Action>) {
        if self.state != State::Init {
            return;
        }
        let name = &self.cfg.name;
        self.effective_priority = self.compute_priority();
        self.master_adver_int = self.cfg.advert_int;
        let faulted = self.own_fault();
        if faulted {
            self.want = Want::Fault;
        }
        let group_state = group.map_or(
            match self.want {
                Want::Master => State::Master,
                Want::Backup => State::Backup,
                Want::Fault => State::Fault,
            },
            |g| g.state,
        );
        let waiting = self.init_pending() || group.is_some_and(|g| g.others_init);
        let owner = group_state == State::Master
            && self.base_priority == PRIORITY_OWNER
            && self.want == Want::Master;
        // A group decides for its members; a lone instance for itself.
        let resume = self.cfg.resume_master && group.is_none_or(|g| g.state == State::Master);
        if !faulted && !waiting && (owner || resume) {
            // keepalived sets a 1 µs master-down timer "as the simplest way
            // to become master"; we go there directly.
            self.state = State::Backup;
            self.goto_master(now, group, out);
            return;
        }
        self.ms_down_timer = if group_state == State::Backup && self.want == Want::Master {
            // In a sync group held in BACKUP: "allow one adver_int to pass to
            // ensure there is no other master".
            self.master_adver_int + self.skew_for(1)
        } else {
            self.master_down_interval()
        };
        if !faulted && !waiting && group_state != State::Fault {
            info!("({name}) Entering BACKUP STATE (init)");
            self.state = State::Backup;
            self.sands = Some(now + self.ms_down_timer);
            out.push(Action::BecomeBackup);
            out.push(self.notify(NotifyState::Backup));
        } else {
            self.state = State::Fault;
            self.sands = None;
            out.push(Action::BecomeFault);
            // Waiting for scripts is not worth a FAULT notify (keepalived).
            if faulted {
                info!("({name}) Entering FAULT STATE (init)");
                out.push(self.notify(NotifyState::Fault));
            }
        }
    }

    fn stop(&mut self, out: &mut Vec<Action>) {
        if self.state == State::Stopped {
            return;
        }
        if self.state == State::Master {
            // "if we stop vrrp, warn the other routers to speed up the
            // recovery" (RFC 5798 §6.4.3 Shutdown).
            out.push(self.send_advert(PRIORITY_STOP));
        }
        if self.vips_set {
            out.push(Action::ReleaseVips);
            self.vips_set = false;
        }
        self.state = State::Stopped;
        self.clear_timers();
        out.push(self.notify(NotifyState::Stop));
    }

    fn clear_timers(&mut self) {
        self.sands = None;
        self.garp_at = None;
        self.lower_garp_at = None;
        self.garp_refresh_at = None;
        self.preempt_time = None;
    }

    fn expect<'a>(&'a self, check_addresses: bool) -> Expect<'a> {
        Expect {
            version: self.cfg.version,
            auth_type: if self.cfg.auth_pass.is_some() {
                AUTH_PASS
            } else {
                AUTH_NONE
            },
            auth_data: self.cfg.auth_pass.unwrap_or([0; 8]),
            interval: match self.cfg.version {
                Version::V2 => self.cfg.advert_int.as_secs().min(255) as u16,
                Version::V3 => (self.cfg.advert_int.as_millis() / 10) as u16,
            },
            vips: &self.cfg.vips,
            check_addresses,
            unicast: self.cfg.target.is_unicast(),
            peers: &self.cfg.peers,
        }
    }

    fn check(
        &mut self,
        rx: &RxInfo,
        adv: &Advert,
        check_addresses: bool,
    ) -> Result<(), PacketError> {
        if adv.vrid != self.cfg.vrid {
            return Err(PacketError::Vrid {
                received: adv.vrid,
                ours: self.cfg.vrid,
            });
        }
        let r = adv.check(rx, &self.expect(check_addresses));
        if let Err(e) = &r {
            self.refused += 1;
            info!("({}) {e} (from {})", self.cfg.name, rx.src);
        }
        r
    }

    /// v3: take the master's interval (RFC 5798 §6.4.2). A zero interval
    /// is not adopted.
    fn adopt_interval(&mut self, adv: &Advert) {
        if self.cfg.version == Version::V3 && adv.interval != 0 {
            let iv = adv.interval_duration();
            if iv != self.master_adver_int {
                info!(
                    "({}) advertisement interval updated from {}ms to {}ms by master",
                    self.cfg.name,
                    self.master_adver_int.as_millis(),
                    iv.as_millis()
                );
                self.master_adver_int = iv;
            }
        }
    }

    /// BACKUP receive (keepalived's vrrp_state_backup, RFC 5798 §6.4.2).
    fn backup_rx(&mut self, rx: &RxInfo, adv: &Advert, now: Instant) {
        let check_addr = !self.cfg.skip_check_adv_addr || self.master_ip != Some(rx.src);
        if self.check(rx, adv, check_addr).is_err() {
            // Ignored: the master-down timer keeps running.
            return;
        }
        let name = &self.cfg.name;
        let preempt_running = !self.cfg.preempt_delay.is_zero()
            && match self.preempt_time {
                None => true,
                Some(t) => t > now,
            };
        if adv.priority == PRIORITY_STOP {
            info!("({name}) Backup received priority 0 advertisement");
            self.ms_down_timer = self.skew();
            self.sands = Some(now + self.ms_down_timer);
        } else if self.cfg.nopreempt || adv.priority >= self.effective_priority || preempt_running {
            self.adopt_interval(adv);
            self.ms_down_timer = self.master_down_interval();
            self.master_ip = Some(rx.src);
            if !self.cfg.preempt_delay.is_zero() {
                if adv.priority >= self.effective_priority {
                    if self.preempt_time.take().is_some() {
                        info!("({}) stop preempt delay", self.cfg.name);
                    }
                } else if self.preempt_time.is_none() {
                    info!(
                        "({}) start preempt delay ({:?})",
                        self.cfg.name, self.cfg.preempt_delay
                    );
                    self.preempt_time = Some(now + self.cfg.preempt_delay);
                }
            }
            // Held in BACKUP by a sync group or not: now we want BACKUP.
            self.want = Want::Backup;
            self.sands = Some(now + self.ms_down_timer);
        } else {
            info!(
                "({name}) received lower priority ({}) advert from {} - discarding",
                adv.priority, rx.src
            );
            self.master_ip = Some(rx.src);
        }
    }

    /// MASTER receive (keepalived's vrrp_state_master_rx, RFC 5798 §6.4.3).
    fn master_rx(&mut self, rx: &RxInfo, adv: &Advert, now: Instant, out: &mut Vec<Action>) {
        if self.check(rx, adv, true).is_err() {
            return;
        }
        let name = self.cfg.name.clone();
        let ours = self.cfg.primary_ip;
        if adv.priority == PRIORITY_STOP {
            // RFC 5798 §6.4.3: send an advert at once (and restart the
            // advert timer).
            out.push(self.send_advert(self.effective_priority));
            self.sands = Some(now + self.cfg.advert_int);
            return;
        }
        if adv.priority == self.effective_priority {
            if rx.src == ours {
                warn!("({name}) WARNING - equal priority advert received from remote host with our IP address.");
            } else if self.effective_priority == PRIORITY_OWNER {
                warn!("({name}) CONFIGURATION ERROR: local instance and a remote instance are both configured as address owner, please fix - reducing local priority");
                self.base_priority = PRIORITY_OWNER - 1;
                self.effective_priority = PRIORITY_OWNER - 1;
            }
        }
        let (p, e) = (adv.priority, self.effective_priority);
        if p < e || (p == e && rx.src < ours) {
            info!("({name}) Received advert from {} with lower priority {p}, ours {e}, forcing new election", rx.src);
            out.push(self.send_advert(e));
            self.sands = Some(now + self.cfg.advert_int);
            let g = &self.cfg.garp;
            let rep = g.lower_prio_repeat.unwrap_or(g.master_repeat);
            if rep > 0 {
                out.push(Action::SendGarp { count: rep });
                let delay = g.lower_prio_delay.unwrap_or(g.master_delay);
                if !delay.is_zero() {
                    self.lower_garp_at = Some(now + delay);
                }
            }
        } else if p > e || (p == e && rx.src > ours) {
            if p > e {
                info!(
                    "({name}) Master received advert from {} with higher priority {p}, ours {e}",
                    rx.src
                );
            } else {
                info!("({name}) Master received advert from {} with same priority {p} but higher IP address than ours", rx.src);
            }
            self.adopt_interval(adv);
            self.master_ip = Some(rx.src);
            self.want = Want::Backup;
            self.leave_master(Want::Backup, now, out);
        }
    }

    fn timer(&mut self, now: Instant, group: Option<&GroupView>, out: &mut Vec<Action>) {
        if self.sands.is_some_and(|t| t <= now) {
            match self.state {
                State::Backup => {
                    info!("({}) Receive advertisement timeout", self.cfg.name);
                    self.want = Want::Master;
                    self.goto_master(now, group, out);
                }
                State::Master => self.master_tx(now, out),
                _ => self.sands = None,
            }
        }
        if self.state != State::Master {
            self.garp_at = None;
            self.lower_garp_at = None;
            return;
        }
        if self.garp_at.is_some_and(|t| t <= now) {
            self.garp_at = None;
            out.push(Action::SendGarp {
                count: self.cfg.garp.master_repeat,
            });
        }
        if self.lower_garp_at.is_some_and(|t| t <= now) {
            self.lower_garp_at = None;
            let g = &self.cfg.garp;
            out.push(Action::SendGarp {
                count: g.lower_prio_repeat.unwrap_or(g.master_repeat),
            });
        }
    }

    /// vrrp_state_goto_master: in a sync group only when the group can go
    /// to MASTER, else stay BACKUP wanting MASTER.
    fn goto_master(&mut self, now: Instant, group: Option<&GroupView>, out: &mut Vec<Action>) {
        if let Some(g) = group {
            if g.state != State::Master && !g.others_want_master {
                self.want = Want::Master;
                self.ms_down_timer = self.master_down_interval();
                self.sands = Some(now + self.ms_down_timer);
                return;
            }
        }
        self.state = State::Master;
        self.want = Want::Master;
        self.preempt_time = None;
        // Back to our own interval as master (RFC 5798 §6.4.3 sends at
        // Advertisement_Interval).
        self.master_adver_int = self.cfg.advert_int;
        self.master_tx(now, out);
    }

    /// vrrp_state_master_tx: the advert first ("the old master needs to
    /// remove the VIPs before we send the gratuitous ARPs"), then the VIPs,
    /// GARPs and notifies on the first one.
    fn master_tx(&mut self, now: Instant, out: &mut Vec<Action>) {
        out.push(self.send_advert(self.effective_priority));
        self.sands = Some(now + self.cfg.advert_int);
        let g = self.cfg.garp;
        if !self.vips_set {
            info!("({}) Entering MASTER STATE", self.cfg.name);
            self.vips_set = true;
            out.push(Action::BecomeMaster);
            out.push(Action::SendGarp {
                count: g.master_repeat,
            });
            self.garp_refresh_at = (!g.master_refresh.is_zero()).then(|| now + g.master_refresh);
            out.push(self.notify(NotifyState::Master));
            self.garp_at = (!g.master_delay.is_zero()).then(|| now + g.master_delay);
        } else if let Some(t) = self.garp_refresh_at {
            if now > t {
                out.push(Action::SendGarp {
                    count: g.master_refresh_repeat,
                });
                self.garp_refresh_at = Some(now + g.master_refresh);
            }
        }
    }

    /// vrrp_state_leave_master to BACKUP or FAULT.
    fn leave_master(&mut self, want: Want, now: Instant, out: &mut Vec<Action>) {
        if want == Want::Fault {
            info!("({}) Entering FAULT STATE", self.cfg.name);
            out.push(self.send_advert(PRIORITY_STOP));
        } else {
            info!("({}) Entering BACKUP STATE", self.cfg.name);
        }
        if self.vips_set {
            out.push(Action::ReleaseVips);
            self.vips_set = false;
        }
        self.garp_at = None;
        self.lower_garp_at = None;
        self.garp_refresh_at = None;
        self.preempt_time = None;
        self.ms_down_timer = self.master_down_interval();
        if want == Want::Fault {
            self.state = State::Fault;
            self.sands = None;
            out.push(Action::BecomeFault);
            out.push(self.notify(NotifyState::Fault));
        } else {
            self.state = State::Backup;
            self.sands = Some(now + self.ms_down_timer);
            out.push(Action::BecomeBackup);
            out.push(self.notify(NotifyState::Backup));
        }
    }

    /// vrrp_state_leave_fault: from FAULT (or INIT) to BACKUP, or to MASTER
    /// for the owner wanting it.
    fn leave_fault(&mut self, now: Instant, group: Option<&GroupView>, out: &mut Vec<Action>) {
        self.master_adver_int = self.cfg.advert_int;
        if self.want == Want::Master {
            self.state = State::Backup;
            self.goto_master(now, group, out);
            if self.state == State::Master {
                return;
            }
            // Held back by the group: BACKUP with a full timer.
        }
        info!("({}) Entering BACKUP STATE", self.cfg.name);
        self.state = State::Backup;
        self.preempt_time = None;
        self.ms_down_timer = self.master_down_interval();
        self.sands = Some(now + self.ms_down_timer);
        out.push(Action::BecomeBackup);
        out.push(self.notify(NotifyState::Backup));
    }

    /// keepalived's down_instance.
    fn go_fault(&mut self, now: Instant, out: &mut Vec<Action>) {
        self.want = Want::Fault;
        match self.state {
            State::Master => self.leave_master(Want::Fault, now, out),
            State::Backup | State::Init => {
                info!("({}) Entering FAULT STATE", self.cfg.name);
                self.state = State::Fault;
                self.clear_timers();
                out.push(Action::BecomeFault);
                out.push(self.notify(NotifyState::Fault));
            }
            // In FAULT already while waiting for scripts: keepalived still
            // notifies FAULT now.
            State::Fault if !self.fault_notified => {
                info!("({}) Entering FAULT STATE", self.cfg.name);
                out.push(self.notify(NotifyState::Fault));
            }
            State::Fault | State::Stopped => {}
        }
    }

    /// keepalived's try_up_instance: every unweighted tracker is fine.
    fn try_up(&mut self, now: Instant, group: Option<&GroupView>, out: &mut Vec<Action>) {
        if self.state != State::Fault {
            return;
        }
        self.want = if self.cfg.initial_master && self.base_priority == PRIORITY_OWNER {
            Want::Master
        } else {
            Want::Backup
        };
        if let Some(g) = group {
            if g.others_faulted || g.others_init {
                // The group stays down until every member is up.
                self.want = Want::Backup;
                return;
            }
        }
        self.leave_fault(now, group, out);
    }

    fn track(
        &mut self,
        kind: TrackKind,
        name: &str,
        status: TrackStatus,
        now: Instant,
        group: Option<&GroupView>,
        out: &mut Vec<Action>,
    ) {
        let Some(idx) = self
            .cfg
            .tracks
            .iter()
            .position(|t| t.kind == kind && t.name == name)
        else {
            return;
        };
        let was_failed = self.cfg.tracks[idx].failed();
        let had_fault = self.own_fault();
        let was_pending = self.cfg.tracks[idx].pending();
        self.cfg.tracks[idx].status = status;
        if matches!(self.state, State::Init | State::Stopped) {
            // Recorded for Start.
            self.effective_priority = self.compute_priority();
            return;
        }
        let t = &self.cfg.tracks[idx];
        if t.weight == 0 {
            let failed = t.failed();
            if failed && !had_fault {
                match kind {
                    TrackKind::Interface => info!(
                        "({}) Entering FAULT STATE (interface {name} down)",
                        self.cfg.name
                    ),
                    TrackKind::Script => {
                        info!("({}) Entering FAULT STATE (script {name})", self.cfg.name)
                    }
                    TrackKind::Dataplane => info!(
                        "({}) Entering FAULT STATE (dataplane {name} stalled)",
                        self.cfg.name
                    ),
                }
                self.go_fault(now, out);
            } else if !failed
                && (was_failed || was_pending)
                && !self.own_fault()
                && !self.init_pending()
            {
                self.try_up(now, group, out);
            }
            return;
        }
        let old = self.effective_priority;
        let new = self.compute_priority();
        if new == old {
            return;
        }
        info!(
            "({}) Changing effective priority from {old} to {new}",
            self.cfg.name
        );
        let old_down = self.ms_down_timer;
        self.effective_priority = new;
        out.push(Action::PriorityChanged { from: old, to: new });
        self.ms_down_timer = self.master_down_interval();
        if self.state == State::Backup {
            // keepalived moves the running timer by the change.
            if let Some(s) = self.sands {
                self.sands = Some(if self.ms_down_timer >= old_down {
                    s + (self.ms_down_timer - old_down)
                } else {
                    s.checked_sub(old_down - self.ms_down_timer).unwrap_or(s)
                });
            }
        }
    }

    /// A reload that keeps this instance (same name, VRID, interface and
    /// version): as keepalived's reload, the state stays and the new
    /// settings apply. Tracked objects present before keep their status
    /// (new ones start as [`InstanceConfig::from_config`] sets them); a
    /// priority change moves a BACKUP's running timer as tracking does; a
    /// MASTER adverts at once with its new priority, interval and VIPs (the
    /// caller takes and releases the VIPs that came and went, see
    /// [`vip_changes`]).
    pub fn reconfigure(&mut self, mut cfg: InstanceConfig, now: Instant) -> Vec<Action> {
        for t in cfg.tracks.iter_mut() {
            if let Some(old) = self
                .cfg
                .tracks
                .iter()
                .find(|o| o.kind == t.kind && o.name == t.name)
            {
                t.status = old.status;
            }
        }
        let mut out = Vec::new();
        self.cfg = cfg;
        self.base_priority = self.cfg.priority;
        let old = self.effective_priority;
        let old_down = self.ms_down_timer;
        self.effective_priority = self.compute_priority();
        if self.effective_priority != old {
            info!(
                "({}) Changing effective priority from {old} to {}",
                self.cfg.name, self.effective_priority
            );
            out.push(Action::PriorityChanged {
                from: old,
                to: self.effective_priority,
            });
        }
        match self.state {
            State::Master => {
                self.master_adver_int = self.cfg.advert_int;
                self.ms_down_timer = self.master_down_interval();
                out.push(self.send_advert(self.effective_priority));
                self.sands = Some(now + self.master_adver_int);
            }
            State::Backup => {
                self.ms_down_timer = self.master_down_interval();
                if let Some(s) = self.sands {
                    self.sands = Some(if self.ms_down_timer >= old_down {
                        s + (self.ms_down_timer - old_down)
                    } else {
                        s.checked_sub(old_down - self.ms_down_timer).unwrap_or(s)
                    });
                }
            }
            _ => self.ms_down_timer = self.master_down_interval(),
        }
        out
    }

    // Sync-group transitions (vrrp_sync.c), driven by `SyncGroup`.

    /// vrrp_sync_master: a member follows the group to MASTER.
    pub(crate) fn sync_master(&mut self, now: Instant, out: &mut Vec<Action>) {
        if matches!(self.state, State::Master | State::Stopped | State::Init) {
            return;
        }
        self.want = Want::Master;
        self.state = State::Backup;
        self.goto_master(now, None, out);
    }

    /// vrrp_sync_backup: a member follows the group to BACKUP.
    pub(crate) fn sync_backup(&mut self, now: Instant, out: &mut Vec<Action>) {
        self.want = Want::Backup;
        match self.state {
            State::Master => self.leave_master(Want::Backup, now, out),
            State::Fault => self.leave_fault(now, None, out),
            _ => {}
        }
    }

    /// vrrp_sync_fault: a member follows the group to FAULT.
    pub(crate) fn sync_fault(&mut self, now: Instant, out: &mut Vec<Action>) {
        if matches!(self.state, State::Backup | State::Master) {
            self.go_fault(now, out);
        }
    }
}

/// Whether two configurations of an instance are the same settings
/// (tracked objects' live status aside): a reload leaves such an instance
/// alone.
pub fn same_settings(a: &InstanceConfig, b: &InstanceConfig) -> bool {
    let strip = |c: &InstanceConfig| {
        let mut c = c.clone();
        for t in c.tracks.iter_mut() {
            t.status = TrackStatus::Init;
        }
        c
    };
    strip(a) == strip(b)
}

/// The VIPs a reconfigured MASTER must release and take: (gone, new).
pub fn vip_changes<A: Copy + PartialEq>(old: &[A], new: &[A]) -> (Vec<A>, Vec<A>) {
    let gone = old.iter().filter(|v| !new.contains(v)).copied().collect();
    let came = new.iter().filter(|v| !old.contains(v)).copied().collect();
    (gone, came)
}

#[cfg(test)]
pub(crate) mod tests;
