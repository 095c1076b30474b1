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

use super::notify::NotifyState;
use super::packet::{Advert, Expect, PacketError, RxInfo, Version, AUTH_NONE, AUTH_PASS};
use super::script::weight_contribution;
use ferrovs_config::model::{AuthType, Config, GarpSettings, SyncGroup, VrrpInstance, VrrpState};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
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

/// Where adverts go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdvertTarget {
    /// To the group (224.0.0.18 or `vrrp_mcast_group4`), TTL 255.
    Multicast(Ipv4Addr),
    /// One copy to each `unicast_peer`; the v3 checksum of each copy covers
    /// that peer's address.
    Unicast(Vec<Ipv4Addr>),
}

impl AdvertTarget {
    pub fn is_unicast(&self) -> bool {
        matches!(self, AdvertTarget::Unicast(_))
    }
    /// The destination address of every copy.
    pub fn destinations(&self) -> Vec<Ipv4Addr> {
        match self {
            AdvertTarget::Multicast(g) => vec![*g],
            AdvertTarget::Unicast(p) => p.clone(),
        }
    }
}

/// What a tracked object is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TrackKind {
    Interface,
    Script,
}

/// A tracked object's last known state. Scripts start in `Init` until
/// their first result (or `Down` with `init_fail`); interfaces start `Up`
/// unless the caller says otherwise before [`Event::Start`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TrackStatus {
    Init,
    Up,
    Down,
}

/// One tracked interface or script and what it does to the instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackSpec {
    pub kind: TrackKind,
    pub name: String,
    /// 0: failure puts the instance in FAULT; else the priority change
    /// (positive while up, negative while down, as keepalived).
    pub weight: i32,
    /// `weight N reverse`: the sense is inverted.
    pub reverse: bool,
    pub status: TrackStatus,
}

impl TrackSpec {
    /// An unweighted tracker whose object is failed (reverse: is up).
    fn failed(&self) -> bool {
        self.weight == 0
            && match self.status {
                TrackStatus::Init => false,
                TrackStatus::Up => self.reverse,
                TrackStatus::Down => !self.reverse,
            }
    }
    /// An unweighted script that has not reported yet (keepalived's
    /// `num_script_init`).
    fn pending(&self) -> bool {
        self.weight == 0 && self.status == TrackStatus::Init
    }
    fn contribution(&self) -> i32 {
        weight_contribution(self.weight, self.reverse, self.status)
    }
}

/// Everything the state machine needs to know of its configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct InstanceConfig {
    pub name: String,
    pub vrid: u8,
    pub version: Version,
    /// Configured (base) priority, 1–255.
    pub priority: u8,
    /// Our advert interval (v2: whole seconds; v3: a multiple of 10 ms).
    pub advert_int: Duration,
    /// `state MASTER` (keepalived's initial wantstate).
    pub initial_master: bool,
    pub nopreempt: bool,
    pub preempt_delay: Duration,
    /// `auth_type PASS` password as carried (v2 only).
    pub auth_pass: Option<[u8; 8]>,
    /// The addresses carried in adverts (`virtual_ipaddress`, IPv4).
    pub vips: Vec<Ipv4Addr>,
    /// Our primary address: the source of our adverts and the tie-breaker
    /// (unicast_src_ip, else mcast_src_ip, else the interface's address).
    pub primary_ip: Ipv4Addr,
    pub target: AdvertTarget,
    pub garp: GarpSettings,
    /// `vrrp_skip_check_adv_addr`: a backup skips the VIP list check for
    /// adverts from the master it already knows.
    pub skip_check_adv_addr: bool,
    pub tracks: Vec<TrackSpec>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// IPv6 VRRP instances are not handled by this state machine.
    Ipv6(String),
    /// IPSEC-AH authentication is not supported.
    AuthAh(String),
    Version(String, u8),
    /// VRRPv3 needs at least one VIP (keepalived refuses it too).
    NoVip(String),
    Interval(String, Duration),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Ipv6(n) => write!(f, "({n}) IPv6 VRRP instances are not supported"),
            ConfigError::AuthAh(n) => write!(f, "({n}) auth_type AH is not supported"),
            ConfigError::Version(n, v) => write!(f, "({n}) unknown VRRP version {v}"),
            ConfigError::NoVip(n) => {
                write!(f, "({n}) No VIP specified; at least one is required")
            }
            ConfigError::Interval(n, d) => {
                write!(
                    f,
                    "({n}) advert_int {d:?} out of range for this VRRP version"
                )
            }
        }
    }
}

impl std::error::Error for ConfigError {}

fn v4(a: &IpAddr) -> Option<Ipv4Addr> {
    match a {
        IpAddr::V4(a) => Some(*a),
        IpAddr::V6(_) => None,
    }
}

/// Adds a tracker, or merges it into an existing one for the same object
/// the way keepalived merges a sync group's tracking into a member's: an
/// unweighted tracker stays unweighted, a weighted one takes the new weight.
fn merge_track(tracks: &mut Vec<TrackSpec>, t: TrackSpec) {
    if let Some(e) = tracks
        .iter_mut()
        .find(|e| e.kind == t.kind && e.name == t.name)
    {
        if e.weight != 0 {
            e.weight = t.weight;
            e.reverse = t.reverse;
        }
        return;
    }
    tracks.push(t);
}

impl InstanceConfig {
    /// Builds the state machine's configuration from the model.
    /// `interface_ip` is the primary IPv4 address of the instance's
    /// interface (used unless unicast_src_ip / mcast_src_ip is set).
    pub fn from_config(
        cfg: &Config,
        inst: &VrrpInstance,
        interface_ip: Ipv4Addr,
    ) -> Result<InstanceConfig, ConfigError> {
        let name = inst.name.clone();
        let version = match inst.version {
            0 => Version::from_number(cfg.global.vrrp_version),
            v => Version::from_number(v),
        }
        .ok_or(ConfigError::Version(name.clone(), inst.version))?;

        let mut vips = Vec::new();
        for v in &inst.virtual_ipaddress {
            vips.push(v4(&v.addr).ok_or_else(|| ConfigError::Ipv6(name.clone()))?);
        }
        if vips.is_empty() {
            if version == Version::V3 {
                return Err(ConfigError::NoVip(name));
            }
            warn!("({name}) No VIP specified; at least one is sensible");
        }

        let auth_pass = match (&inst.authentication, version) {
            (Some(a), Version::V2) => match a.auth_type {
                AuthType::Pass => Some(super::packet::pass_data(&a.auth_pass)),
                AuthType::Ah => return Err(ConfigError::AuthAh(name)),
            },
            (Some(_), Version::V3) => {
                warn!("({name}) VRRP version 3 does not support authentication. Ignoring.");
                None
            }
            (None, _) => None,
        };

        let advert_int = match version {
            Version::V2 => {
                // The v2 field is whole seconds (RFC 3768 §5.3.7).
                let s = inst.advert_int.as_secs_f64().round();
                if !(1.0..=255.0).contains(&s) {
                    return Err(ConfigError::Interval(name, inst.advert_int));
                }
                let d = Duration::from_secs(s as u64);
                if d != inst.advert_int {
                    warn!(
                        "({name}) VRRPv2 advert_int must be whole seconds - using {}",
                        d.as_secs()
                    );
                }
                d
            }
            Version::V3 => {
                let cs = (inst.advert_int.as_millis() / 10) as u64;
                if !(1..=super::packet::V3_MAX_INTERVAL_CS as u64).contains(&cs) {
                    return Err(ConfigError::Interval(name, inst.advert_int));
                }
                Duration::from_millis(cs * 10)
            }
        };

        let initial_master = inst.state == VrrpState::Master;
        let mut nopreempt = inst.nopreempt;
        let mut preempt_delay = inst.preempt_delay;
        if inst.priority == PRIORITY_OWNER && nopreempt {
            warn!("({name}) nopreempt is incompatible with priority 255. resetting nopreempt");
            nopreempt = false;
        }
        if initial_master {
            if nopreempt {
                warn!("({name}) Warning - nopreempt will not work with initial state MASTER - clearing");
                nopreempt = false;
            }
            if !preempt_delay.is_zero() {
                warn!("({name}) Warning - preempt delay will not work with initial state MASTER - clearing");
                preempt_delay = Duration::ZERO;
            }
        }
        if nopreempt && !preempt_delay.is_zero() {
            warn!("({name}) preempt_delay is incompatible with nopreempt mode - resetting");
            preempt_delay = Duration::ZERO;
        }

        let peers: Vec<Ipv4Addr> = inst.unicast_peer.iter().filter_map(v4).collect();
        let target = if peers.is_empty() {
            AdvertTarget::Multicast(cfg.global.vrrp_mcast_group4)
        } else {
            AdvertTarget::Unicast(peers)
        };
        let primary_ip = inst
            .unicast_src_ip
            .as_ref()
            .and_then(v4)
            .or_else(|| inst.mcast_src_ip.as_ref().and_then(v4))
            .unwrap_or(interface_ip);

        let group: Option<&SyncGroup> = cfg
            .vrrp_sync_groups
            .iter()
            .find(|g| g.group.contains(&inst.name));
        let owner = inst.priority == PRIORITY_OWNER;
        let why = if owner { "address owner" } else { "SYNC group" };

        let mut tracks = Vec::new();
        if !inst.dont_track_primary {
            if let Some(ifname) = &inst.interface {
                tracks.push(TrackSpec {
                    kind: TrackKind::Interface,
                    name: ifname.clone(),
                    weight: 0,
                    reverse: false,
                    status: TrackStatus::Up,
                });
            }
        }
        for ti in &inst.track_interface {
            let mut weight = ti.weight.unwrap_or(0);
            if weight != 0 && owner {
                warn!(
                    "({name}) ignoring {} tracked interface due to {why}",
                    ti.name
                );
                continue;
            }
            if weight != 0 && group.is_some() {
                warn!(
                    "({name}) ignoring {} tracked interface weight due to {why}",
                    ti.name
                );
                weight = 0;
            }
            merge_track(
                &mut tracks,
                TrackSpec {
                    kind: TrackKind::Interface,
                    name: ti.name.clone(),
                    weight,
                    reverse: false,
                    status: TrackStatus::Up,
                },
            );
        }
        let script_track = |ts: &ferrovs_config::model::TrackScript| -> Option<TrackSpec> {
            let Some(s) = cfg.vrrp_script(&ts.name) else {
                warn!("({name}) track script {} not found, ignoring...", ts.name);
                return None;
            };
            // keepalived: the track_script line's weight overrides the
            // script's; its reverse defaults to the script's.
            let (weight, reverse) = match ts.weight {
                Some(w) => (w, ts.weight_reverse || s.weight_reverse),
                None => (s.weight, s.weight_reverse),
            };
            Some(TrackSpec {
                kind: TrackKind::Script,
                name: ts.name.clone(),
                weight,
                reverse,
                status: if s.init_fail {
                    TrackStatus::Down
                } else {
                    TrackStatus::Init
                },
            })
        };
        for ts in &inst.track_script {
            let Some(t) = script_track(ts) else { continue };
            if t.weight != 0 && (owner || group.is_some()) {
                warn!(
                    "({name}) ignoring tracked script {} with weights due to {why}",
                    t.name
                );
                continue;
            }
            merge_track(&mut tracks, t);
        }
        if let Some(g) = group {
            // A weighted group tracker cannot apply to an address owner.
            let group_owner = g.group.iter().any(|m| {
                cfg.vrrp_instance(m)
                    .is_some_and(|i| i.priority == PRIORITY_OWNER)
            });
            for ti in &g.track_interface {
                let weight = if group_owner {
                    0
                } else {
                    ti.weight.unwrap_or(0)
                };
                merge_track(
                    &mut tracks,
                    TrackSpec {
                        kind: TrackKind::Interface,
                        name: ti.name.clone(),
                        weight,
                        reverse: false,
                        status: TrackStatus::Up,
                    },
                );
            }
            for ts in &g.track_script {
                let Some(mut t) = script_track(ts) else {
                    continue;
                };
                if group_owner {
                    t.weight = 0;
                }
                merge_track(&mut tracks, t);
            }
        }

        Ok(InstanceConfig {
            name,
            vrid: inst.virtual_router_id,
            version,
            priority: inst.priority,
            advert_int,
            initial_master,
            nopreempt,
            preempt_delay,
            auth_pass,
            vips,
            primary_ip,
            target,
            garp: inst.garp,
            skip_check_adv_addr: cfg.global.vrrp_skip_check_adv_addr,
            tracks,
        })
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
    master_ip: Option<Ipv4Addr>,
    vips_set: bool,
    /// A FAULT notify went out since entering FAULT (an instance waiting
    /// for its scripts is in FAULT without one).
    fault_notified: bool,
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
    pub fn encode_adverts(&self, priority: u8, to: &AdvertTarget) -> Vec<(Ipv4Addr, Vec<u8>)> {
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
        if !faulted
            && !waiting
            && group_state == State::Master
            && self.base_priority == PRIORITY_OWNER
            && self.want == Want::Master
        {
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
        }
    }

    fn check(&self, rx: &RxInfo, adv: &Advert, check_addresses: bool) -> Result<(), PacketError> {
        if adv.vrid != self.cfg.vrid {
            return Err(PacketError::Vrid {
                received: adv.vrid,
                ours: self.cfg.vrid,
            });
        }
        adv.check(rx, &self.expect(check_addresses))
            .inspect_err(|e| {
                info!("({}) {e} (from {})", self.cfg.name, rx.src);
            })
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
                if let TrackKind::Interface = kind {
                    info!(
                        "({}) Entering FAULT STATE (interface {name} down)",
                        self.cfg.name
                    );
                } else {
                    info!("({}) Entering FAULT STATE (script {name})", self.cfg.name);
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::vrrp::packet::pass_data;

    pub const MCAST: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
    pub const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);

    pub fn ip(last: u8) -> Ipv4Addr {
        Ipv4Addr::new(198, 18, 0, last)
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
            nopreempt: false,
            preempt_delay: Duration::ZERO,
            auth_pass: Some(pass_data("s3cret")),
            vips: vec![VIP],
            primary_ip: ip(last),
            target: AdvertTarget::Multicast(MCAST),
            garp: GarpSettings::default(),
            skip_check_adv_addr: false,
            tracks: Vec::new(),
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
    fn from_config_applies_keepalived_rules() {
        use ferrovs_config::model::{
            Authentication, TrackInterface, TrackScript, VirtualIp, VrrpScript,
        };
        use ferrovs_config::model::{Script, SyncGroup as Sg};
        let vip = |a: &str| VirtualIp {
            addr: a.parse().unwrap(),
            prefix_len: 32,
            brd: None,
            dev: None,
            scope: None,
            label: None,
        };
        let script = |n: &str, w: i32, init_fail: bool| VrrpScript {
            name: n.into(),
            script: Script {
                argv: vec!["/bin/true".into()],
                user: None,
            },
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            weight: w,
            weight_reverse: false,
            fall: 1,
            rise: 1,
            init_fail,
        };
        let inst = VrrpInstance {
            name: "VI_1".into(),
            state: VrrpState::Master,
            interface: Some("eth0".into()),
            virtual_router_id: 51,
            priority: 150,
            advert_int: Duration::from_secs(1),
            version: 2,
            nopreempt: true,
            preempt_delay: Duration::from_secs(3),
            authentication: Some(Authentication {
                auth_type: AuthType::Pass,
                auth_pass: "s3cret-long".into(),
            }),
            virtual_ipaddress: vec![vip("198.18.0.100")],
            virtual_ipaddress_excluded: vec![],
            track_interface: vec![TrackInterface {
                name: "eth1".into(),
                weight: Some(-20),
            }],
            track_script: vec![
                TrackScript {
                    name: "chk".into(),
                    weight: None,
                    weight_reverse: false,
                },
                TrackScript {
                    name: "gone".into(),
                    weight: None,
                    weight_reverse: false,
                },
                TrackScript {
                    name: "must".into(),
                    weight: None,
                    weight_reverse: false,
                },
            ],
            unicast_src_ip: None,
            unicast_peer: vec![],
            mcast_src_ip: None,
            notify: Default::default(),
            smtp_alert: false,
            garp: GarpSettings::default(),
            lvs_sync_daemon_interface: None,
            dont_track_primary: false,
            accept: None,
            use_vmac: None,
        };
        let mut config = Config {
            vrrp_scripts: vec![script("chk", -30, false), script("must", 0, true)],
            vrrp_instances: vec![inst.clone()],
            ..Default::default()
        };
        let c = InstanceConfig::from_config(&config, &inst, ip(1)).unwrap();
        assert!(c.initial_master);
        assert!(!c.nopreempt, "state MASTER clears nopreempt");
        assert_eq!(c.preempt_delay, Duration::ZERO);
        assert_eq!(c.auth_pass, Some(*b"s3cret-l"));
        assert_eq!(c.vips, vec![VIP]);
        assert_eq!(c.target, AdvertTarget::Multicast(MCAST));
        let names: Vec<_> = c
            .tracks
            .iter()
            .map(|t| (t.kind, t.name.as_str(), t.weight, t.status))
            .collect();
        assert_eq!(
            names,
            vec![
                (TrackKind::Interface, "eth0", 0, TrackStatus::Up),
                (TrackKind::Interface, "eth1", -20, TrackStatus::Up),
                (TrackKind::Script, "chk", -30, TrackStatus::Init),
                (TrackKind::Script, "must", 0, TrackStatus::Down),
            ]
        );
        // In a sync group: weights go (interfaces unweighted, weighted
        // scripts dropped), the group's tracking is added.
        config.vrrp_sync_groups = vec![Sg {
            name: "G".into(),
            group: vec!["VI_1".into()],
            track_interface: vec![TrackInterface {
                name: "eth2".into(),
                weight: None,
            }],
            track_script: vec![],
            notify: Default::default(),
            smtp_alert: false,
        }];
        let c = InstanceConfig::from_config(&config, &inst, ip(1)).unwrap();
        let names: Vec<_> = c
            .tracks
            .iter()
            .map(|t| (t.name.as_str(), t.weight))
            .collect();
        assert_eq!(
            names,
            vec![("eth0", 0), ("eth1", 0), ("must", 0), ("eth2", 0)]
        );
        // Unicast, v3 (auth ignored), AH refused.
        let mut u = inst.clone();
        u.version = 3;
        u.advert_int = Duration::from_millis(250);
        u.unicast_src_ip = Some("198.18.0.9".parse().unwrap());
        u.unicast_peer = vec!["198.18.0.2".parse().unwrap()];
        let c = InstanceConfig::from_config(&config, &u, ip(1)).unwrap();
        assert_eq!(c.version, Version::V3);
        assert_eq!(c.auth_pass, None);
        assert_eq!(c.primary_ip, ip(9));
        assert_eq!(c.target, AdvertTarget::Unicast(vec![ip(2)]));
        assert_eq!(c.advert_int, ms(250));
        let mut ah = inst.clone();
        ah.authentication = Some(Authentication {
            auth_type: AuthType::Ah,
            auth_pass: "x".into(),
        });
        assert!(matches!(
            InstanceConfig::from_config(&config, &ah, ip(1)),
            Err(ConfigError::AuthAh(_))
        ));
    }
}
