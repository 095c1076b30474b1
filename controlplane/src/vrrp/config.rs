//! How a keepalived `vrrp_instance` becomes an [`InstanceConfig`]: the
//! advert target, the effective VIP list, tracking, GARP settings and the
//! primary address, checked as keepalived checks them at load.

use super::instance::PRIORITY_OWNER;
use super::packet::{PeerCheck, Version};
use super::script::weight_contribution;
use ferrovs_config::model::{AuthType, Config, GarpSettings, SyncGroup, VrrpInstance, VrrpState};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;
use tracing::{info, warn};

/// Where adverts go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdvertTarget {
    /// To the group (224.0.0.18 or `vrrp_mcast_group4`; ff02::12 or
    /// `vrrp_mcast_group6` for an IPv6 instance), TTL / hop limit 255.
    Multicast(IpAddr),
    /// One copy to each `unicast_peer`; the v3 checksum of each copy covers
    /// that peer's address.
    Unicast(Vec<IpAddr>),
}

impl AdvertTarget {
    pub fn is_unicast(&self) -> bool {
        matches!(self, AdvertTarget::Unicast(_))
    }
    /// The destination address of every copy.
    pub fn destinations(&self) -> Vec<IpAddr> {
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
    /// The dataplane's workers (every instance tracks them, unweighted: a
    /// director whose workers stopped polling cannot forward, so it gives
    /// the VIPs up).
    Dataplane,
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
    pub(crate) fn failed(&self) -> bool {
        self.weight == 0
            && match self.status {
                TrackStatus::Init => false,
                TrackStatus::Up => self.reverse,
                TrackStatus::Down => !self.reverse,
            }
    }
    /// An unweighted script that has not reported yet (keepalived's
    /// `num_script_init`).
    pub(crate) fn pending(&self) -> bool {
        self.weight == 0 && self.status == TrackStatus::Init
    }
    pub(crate) fn contribution(&self) -> i32 {
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
    /// This process takes over from a ferrovs that was MASTER of the
    /// instance a moment ago (`ferrovs upgrade`): it starts in MASTER at
    /// once, as an address owner does, so that the peer, which heard
    /// adverts until the hand-over, never sees a gap long enough to take
    /// the VIPs (keepalived has no such case: its restart hands over).
    pub resume_master: bool,
    pub nopreempt: bool,
    pub preempt_delay: Duration,
    /// `auth_type PASS` password as carried (v2 only).
    pub auth_pass: Option<[u8; 8]>,
    /// The addresses carried in adverts: `virtual_ipaddress`, those of the
    /// instance's family (its first address's, as keepalived takes it).
    pub vips: Vec<IpAddr>,
    /// `virtual_ipaddress_excluded`: held with the others, never in
    /// adverts, of either family (keepalived's way to give an IPv4
    /// instance IPv6 addresses).
    pub excluded: Vec<IpAddr>,
    /// Our primary address: the source of our adverts and the tie-breaker
    /// (unicast_src_ip, else mcast_src_ip, else the interface's address:
    /// its primary IPv4 one, or for an IPv6 instance its link-local one, as
    /// RFC 5798 §5.1.2.1 and keepalived have it).
    pub primary_ip: IpAddr,
    pub target: AdvertTarget,
    pub garp: GarpSettings,
    /// `vrrp_skip_check_adv_addr`: a backup skips the VIP list check for
    /// adverts from the master it already knows.
    pub skip_check_adv_addr: bool,
    pub tracks: Vec<TrackSpec>,
    /// Who may send us unicast adverts, and with what TTL (empty for a
    /// multicast instance).
    pub peers: Vec<PeerCheck>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// No address to send adverts from: the interface has no IPv4 address
    /// (IPv4 instance) or no link-local one (IPv6 instance), and no
    /// unicast_src_ip / mcast_src_ip of the family is given.
    #[error("({0}) interface has no {1} address to send adverts from")]
    NoSource(String, &'static str),
    /// IPSEC-AH authentication is not supported.
    #[error("({0}) auth_type AH is not supported")]
    AuthAh(String),
    #[error("({0}) unknown VRRP version {1}")]
    Version(String, u8),
    /// VRRPv3 needs at least one VIP (keepalived refuses it too).
    #[error("({0}) No VIP specified; at least one is required")]
    NoVip(String),
    #[error("({0}) advert_int {1:?} out of range for this VRRP version")]
    Interval(String, Duration),
}

/// The interface's addresses an instance may send from when the
/// configuration names none.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LocalAddrs {
    /// The interface's primary IPv4 address.
    pub v4: Option<Ipv4Addr>,
    /// The interface's IPv6 link-local address (fe80::/10).
    pub link_local: Option<Ipv6Addr>,
}

impl From<Ipv4Addr> for LocalAddrs {
    fn from(a: Ipv4Addr) -> LocalAddrs {
        LocalAddrs {
            v4: Some(a),
            link_local: None,
        }
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
    /// Every address the instance holds as MASTER: its VIPs and its
    /// excluded addresses.
    pub fn held(&self) -> Vec<IpAddr> {
        self.vips
            .iter()
            .chain(self.excluded.iter())
            .copied()
            .collect()
    }

    /// An instance over IPv6 (RFC 5798 §5.1.2).
    pub fn is_ipv6(&self) -> bool {
        self.primary_ip.is_ipv6()
    }

    /// Builds the state machine's configuration from the model. `local`
    /// holds the addresses of the instance's interface (used unless
    /// unicast_src_ip / mcast_src_ip is set).
    pub fn from_config(
        cfg: &Config,
        inst: &VrrpInstance,
        local: LocalAddrs,
    ) -> Result<InstanceConfig, ConfigError> {
        let name = inst.name.clone();
        // The instance's family is its first address's, as keepalived takes
        // it; addresses of the other family in virtual_ipaddress are
        // ignored (`validate` warns, in keepalived's words).
        let ipv6 = inst
            .virtual_ipaddress
            .first()
            .is_some_and(|v| v.addr.is_ipv6());
        let mut version = match inst.version {
            0 if ipv6 => Some(Version::V3),
            0 => Version::from_number(cfg.global.vrrp_version),
            v => Version::from_number(v),
        }
        .ok_or(ConfigError::Version(name.clone(), inst.version))?;
        if ipv6 && version == Version::V2 {
            // VRRPv2 is IPv4 only (RFC 3768). keepalived's strict mode says
            // this and runs version 3; the parser already did so for a
            // file, this covers a model built otherwise.
            warn!("({name}) cannot use IPv6 with VRRP version 2; setting version 3");
            version = Version::V3;
        }
        let same_family = |a: &IpAddr| a.is_ipv6() == ipv6;
        let vips: Vec<IpAddr> = inst
            .virtual_ipaddress
            .iter()
            .map(|v| v.addr)
            .filter(same_family)
            .collect();
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

        // An unset TTL range is 255..=255: RFC 5798 §7.1 asks TTL 255 of
        // every advert, and keepalived's unicast exemption lets anyone
        // routed to us send one. A peer behind a router is given
        // `min_ttl` as keepalived 2.2 allows.
        // Peers of the other family are skipped, as keepalived skips them
        // ("MUST be of the same family"; `validate` warns).
        let checks: Vec<PeerCheck> = inst
            .unicast_peer
            .iter()
            .filter(|p| same_family(&p.address))
            .map(|p| PeerCheck {
                addr: p.address,
                min_ttl: p
                    .min_ttl
                    .unwrap_or(if p.max_ttl.is_some() { 0 } else { 255 }),
                max_ttl: p.max_ttl.unwrap_or(255),
            })
            .collect();
        let peers: Vec<IpAddr> = checks.iter().map(|p| p.addr).collect();
        let target = if peers.is_empty() {
            AdvertTarget::Multicast(if ipv6 {
                cfg.global.vrrp_mcast_group6
            } else {
                IpAddr::V4(cfg.global.vrrp_mcast_group4)
            })
        } else {
            AdvertTarget::Unicast(peers)
        };
        // keepalived sends IPv6 adverts from the interface's link-local
        // address (RFC 5798 §5.1.2.1) unless unicast_src_ip (which may be a
        // global address) or mcast_src_ip says otherwise.
        let interface_ip = if ipv6 {
            local.link_local.map(IpAddr::V6)
        } else {
            local.v4.map(IpAddr::V4)
        };
        let primary_ip = inst
            .unicast_src_ip
            .filter(same_family)
            .or_else(|| inst.mcast_src_ip.filter(same_family))
            .or(interface_ip)
            .ok_or_else(|| {
                ConfigError::NoSource(name.clone(), if ipv6 { "IPv6 link-local" } else { "IPv4" })
            })?;
        // RFC 5798 §5.2.9 wants an IPv6 advert's first address to be the
        // virtual router's link-local one; keepalived (outside strict mode)
        // only says so, and so does ferrovs.
        if let (Some(IpAddr::V6(first)), false) = (vips.first(), target.is_unicast()) {
            if !super::packet::is_link_local(first) {
                info!("({name}) the first IPv6 VIP address should be link local");
            }
        }
        if let (IpAddr::V6(a), false) = (primary_ip, target.is_unicast()) {
            if !super::packet::is_link_local(&a) {
                // keepalived logs it too (non-strict mode); the peers drop
                // such adverts if they check the source as ferrovs does.
                warn!("({name}) IPv6 multicast adverts are sent from {a}, which is not link-local (RFC 5798 §5.1.2.1)");
            }
        }

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
            resume_master: false,
            nopreempt,
            preempt_delay,
            auth_pass,
            vips,
            excluded: inst
                .virtual_ipaddress_excluded
                .iter()
                .map(|v| v.addr)
                .collect(),
            primary_ip,
            target,
            garp: inst.garp,
            skip_check_adv_addr: cfg.global.vrrp_skip_check_adv_addr,
            tracks,
            peers: checks,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vrrp::instance::tests::{ip, ms, MCAST, VIP};

    #[test]
    fn from_config_applies_keepalived_rules() {
        use ferrovs_config::model::{
            Authentication, TrackInterface, TrackScript, VirtualIp, VrrpScript,
        };
        use ferrovs_config::model::{Script, SyncGroup as Sg, UnicastPeer};
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
        let c = InstanceConfig::from_config(&config, &inst, local()).unwrap();
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
        let c = InstanceConfig::from_config(&config, &inst, local()).unwrap();
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
        u.unicast_peer = vec![UnicastPeer {
            address: "198.18.0.2".parse().unwrap(),
            min_ttl: None,
            max_ttl: None,
        }];
        let c = InstanceConfig::from_config(&config, &u, local()).unwrap();
        assert_eq!(c.version, Version::V3);
        assert_eq!(c.auth_pass, None);
        assert_eq!(c.primary_ip, ip(9));
        assert_eq!(c.target, AdvertTarget::Unicast(vec![ip(2)]));
        let only_255 = PeerCheck {
            addr: ip(2),
            min_ttl: 255,
            max_ttl: 255,
        };
        assert_eq!(c.peers, [only_255]);
        // A routed peer: keepalived's per-peer range.
        u.unicast_peer[0].min_ttl = Some(250);
        let c = InstanceConfig::from_config(&config, &u, local()).unwrap();
        assert_eq!(c.peers[0].min_ttl, 250);
        assert_eq!(c.peers[0].max_ttl, 255);
        u.unicast_peer[0].min_ttl = None;
        u.unicast_peer[0].max_ttl = Some(64);
        let c = InstanceConfig::from_config(&config, &u, local()).unwrap();
        assert_eq!((c.peers[0].min_ttl, c.peers[0].max_ttl), (0, 64));
        assert_eq!(c.advert_int, ms(250));
        let mut ah = inst.clone();
        ah.authentication = Some(Authentication {
            auth_type: AuthType::Ah,
            auth_pass: "x".into(),
        });
        assert!(matches!(
            InstanceConfig::from_config(&config, &ah, local()),
            Err(ConfigError::AuthAh(_))
        ));
        // IPv6 addresses: ignored in an IPv4 instance's virtual_ipaddress
        // (keepalived's rule), held with the instance when excluded; an
        // instance whose first address is IPv6 runs over IPv6: refused.
        let mut d = inst.clone();
        d.virtual_ipaddress.push(vip("2001:2::100"));
        d.virtual_ipaddress_excluded = vec![vip("2001:2::101"), vip("198.18.0.101")];
        let c = InstanceConfig::from_config(&config, &d, local()).unwrap();
        assert_eq!(c.vips, vec![VIP]);
        let held: Vec<IpAddr> = ["198.18.0.100", "2001:2::101", "198.18.0.101"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        assert_eq!(c.held(), held);
        // An instance whose first address is IPv6 runs over IPv6 (RFC
        // 5798 §5.1.2): version 3 whatever `version 2` said (keepalived's
        // strict mode; v2 is IPv4 only), its IPv4 VIPs ignored, sent from
        // the link-local address to ff02::12.
        d.virtual_ipaddress.reverse();
        let c = InstanceConfig::from_config(&config, &d, local()).unwrap();
        assert!(c.is_ipv6());
        assert_eq!(c.version, Version::V3);
        assert_eq!(c.auth_pass, None);
        let v6 = |a: &str| -> IpAddr { a.parse().unwrap() };
        assert_eq!(c.vips, vec![v6("2001:2::100")]);
        assert_eq!(c.primary_ip, v6("fe80::1"));
        assert_eq!(c.target, AdvertTarget::Multicast(v6("ff02::12")));
        assert_eq!(
            c.held(),
            vec![v6("2001:2::100"), v6("2001:2::101"), v6("198.18.0.101")]
        );
        // vrrp_mcast_group6 is the group.
        let mut other_group = config.clone();
        other_group.global.vrrp_mcast_group6 = v6("ff02::1:12");
        let c = InstanceConfig::from_config(&other_group, &d, local()).unwrap();
        assert_eq!(c.target, AdvertTarget::Multicast(v6("ff02::1:12")));
        // No link-local address on the interface: nothing to send from.
        assert_eq!(
            InstanceConfig::from_config(&config, &d, ip4(1).into()),
            Err(ConfigError::NoSource("VI_1".into(), "IPv6 link-local"))
        );
        // Unicast over IPv6: a global unicast_src_ip, IPv6 peers only (an
        // IPv4 peer is skipped as keepalived skips it).
        d.unicast_src_ip = Some(v6("2001:2::1"));
        d.unicast_peer = vec![
            UnicastPeer {
                address: v6("2001:2::2"),
                min_ttl: None,
                max_ttl: None,
            },
            UnicastPeer {
                address: v6("198.18.0.2"),
                min_ttl: None,
                max_ttl: None,
            },
        ];
        let c = InstanceConfig::from_config(&config, &d, ip4(1).into()).unwrap();
        assert_eq!(c.primary_ip, v6("2001:2::1"));
        assert_eq!(c.target, AdvertTarget::Unicast(vec![v6("2001:2::2")]));
        assert_eq!(
            c.peers,
            [PeerCheck {
                addr: v6("2001:2::2"),
                min_ttl: 255,
                max_ttl: 255
            }]
        );
        // The IPv4 unicast_src_ip of an IPv6 instance is ignored.
        d.unicast_src_ip = Some(v6("198.18.0.9"));
        let c = InstanceConfig::from_config(&config, &d, local()).unwrap();
        assert_eq!(c.primary_ip, v6("fe80::1"));
    }

    fn ip4(last: u8) -> Ipv4Addr {
        Ipv4Addr::new(198, 18, 0, last)
    }

    /// The interface's addresses: 198.18.0.1 and fe80::1.
    fn local() -> LocalAddrs {
        LocalAddrs {
            v4: Some(ip4(1)),
            link_local: Some("fe80::1".parse().unwrap()),
        }
    }
}
