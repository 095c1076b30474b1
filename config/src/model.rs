//! The typed configuration model. Every keyword ferrovs reads is carried here
//! with its meaning and with keepalived 2.2's defaults already applied, so the
//! control plane never has to know keepalived's spelling.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// The whole configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Config {
    pub global: GlobalDefs,
    pub ferrovs: FerrovsSettings,
    pub vrrp_scripts: Vec<VrrpScript>,
    pub vrrp_sync_groups: Vec<SyncGroup>,
    pub vrrp_instances: Vec<VrrpInstance>,
    pub virtual_server_groups: Vec<VirtualServerGroup>,
    pub local_address_groups: Vec<LocalAddressGroup>,
    pub virtual_servers: Vec<VirtualServer>,
    pub garp_groups: Vec<GarpGroup>,
}

impl Config {
    pub fn vrrp_script(&self, name: &str) -> Option<&VrrpScript> {
        self.vrrp_scripts.iter().find(|s| s.name == name)
    }
    pub fn vrrp_instance(&self, name: &str) -> Option<&VrrpInstance> {
        self.vrrp_instances.iter().find(|s| s.name == name)
    }
    pub fn virtual_server_group(&self, name: &str) -> Option<&VirtualServerGroup> {
        self.virtual_server_groups.iter().find(|s| s.name == name)
    }
    pub fn local_address_group(&self, name: &str) -> Option<&LocalAddressGroup> {
        self.local_address_groups.iter().find(|s| s.name == name)
    }
}

/// A command line to run (notify scripts, MISC_CHECK, vrrp_script): the
/// program and its arguments, split as keepalived splits them.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Script {
    pub argv: Vec<String>,
    /// `user USER [GROUP]` for this script (else global `script_user`).
    pub user: Option<ScriptUser>,
}

impl Script {
    pub fn command_line(&self) -> String {
        self.argv.join(" ")
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ScriptUser {
    pub user: String,
    pub group: Option<String>,
}

// ---------------------------------------------------------------- global_defs

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GlobalDefs {
    pub router_id: Option<String>,
    pub notification_email: Vec<String>,
    pub notification_email_from: Option<String>,
    pub smtp_server: Option<SmtpServer>,
    /// default 30 s
    pub smtp_connect_timeout: Duration,
    /// default 224.0.0.18
    pub vrrp_mcast_group4: Ipv4Addr,
    /// default ff02::12
    pub vrrp_mcast_group6: IpAddr,
    /// VRRP version for instances that do not set one (default 2).
    pub vrrp_version: u8,
    /// defaults for every instance's garp_master_delay / _repeat etc.
    pub vrrp_garp: GarpSettings,
    /// Delay between gratuitous ARPs sent in a burst (default 0).
    pub vrrp_garp_interval: Duration,
    /// Delay between unsolicited NAs (default 0).
    pub vrrp_gna_interval: Duration,
    pub vrrp_skip_check_adv_addr: bool,
    pub vrrp_strict: bool,
    /// Default user for scripts (`script_user USER [GROUP]`).
    pub script_user: Option<ScriptUser>,
    pub enable_script_security: bool,
    pub lvs_sync_daemon: Option<LvsSyncDaemon>,
    /// `lvs_timeouts [tcp N] [tcpfin N] [udp N]` (ipvsadm --set); None keeps
    /// IPVS's 900 120 300.
    pub lvs_timeouts: Option<LvsTimeouts>,
    /// Clear every virtual service at start (`lvs_flush`).
    pub lvs_flush: bool,
    /// Clear them when stopping (`lvs_flush_onstop`).
    pub lvs_flush_onstop: bool,
}

/// Connection timeouts in seconds; 0 leaves a value unchanged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LvsTimeouts {
    pub tcp: u32,
    pub tcpfin: u32,
    pub udp: u32,
}

impl Default for GlobalDefs {
    fn default() -> Self {
        GlobalDefs {
            router_id: None,
            notification_email: Vec::new(),
            notification_email_from: None,
            smtp_server: None,
            smtp_connect_timeout: Duration::from_secs(30),
            vrrp_mcast_group4: Ipv4Addr::new(224, 0, 0, 18),
            vrrp_mcast_group6: "ff02::12".parse().expect("literal"),
            vrrp_version: 2,
            vrrp_garp: GarpSettings::default(),
            vrrp_garp_interval: Duration::ZERO,
            vrrp_gna_interval: Duration::ZERO,
            vrrp_skip_check_adv_addr: false,
            vrrp_strict: false,
            script_user: None,
            enable_script_security: false,
            lvs_sync_daemon: None,
            lvs_timeouts: None,
            lvs_flush: false,
            lvs_flush_onstop: false,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmtpServer {
    /// An address or a host name.
    pub host: String,
    /// default 25
    pub port: u16,
}

/// Gratuitous ARP timing (global `vrrp_garp_*`, per instance `garp_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GarpSettings {
    /// Second burst this long after becoming master (default 5 s; 0 = none).
    pub master_delay: Duration,
    /// GARPs per burst (default 5).
    pub master_repeat: u32,
    /// Periodic refresh while master (default 0 = off).
    pub master_refresh: Duration,
    /// GARPs per refresh (default 1).
    pub master_refresh_repeat: u32,
    /// After an advert of lower priority (default: master_delay).
    pub lower_prio_delay: Option<Duration>,
    /// default: master_repeat
    pub lower_prio_repeat: Option<u32>,
}

impl Default for GarpSettings {
    fn default() -> Self {
        GarpSettings {
            master_delay: Duration::from_secs(5),
            master_repeat: 5,
            master_refresh: Duration::ZERO,
            master_refresh_repeat: 1,
            lower_prio_delay: None,
            lower_prio_repeat: None,
        }
    }
}

/// `garp_group`: gratuitous ARP and unsolicited NA pacing for some
/// interfaces instead of `vrrp_garp_interval` / `vrrp_gna_interval`. As in
/// keepalived, the interfaces of one group share its timers (one ARP every
/// `garp_interval` across all of them), and an interval the group does not
/// give is none (no pacing), not the global one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GarpGroup {
    pub garp_interval: Option<Duration>,
    pub gna_interval: Option<Duration>,
    /// `interface NAME` lines and the `interfaces { }` block.
    pub interfaces: Vec<String>,
}

/// `lvs_sync_daemon INTERFACE VRRP_INSTANCE [id SYNC_ID] [maxlen LEN] [port PORT] [ttl TTL] [group IP]`
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LvsSyncDaemon {
    /// The VRRP instance whose state decides master/backup sync.
    pub vrrp_instance: String,
    #[serde(flatten)]
    pub options: SyncOptions,
}

/// A sync daemon's interface and options, `INTERFACE [id N] [maxlen N]
/// [port N] [ttl N] [group ADDR]`, as `lvs_sync_daemon` and the ferrovs
/// block's `sync_active_active` take them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncOptions {
    pub interface: String,
    /// None when not given: `lvs_sync_daemon` then takes the VRRP
    /// instance's VRID, as keepalived does, `sync_active_active` 0, as
    /// ipvsadm does.
    pub sync_id: Option<u8>,
    pub maxlen: Option<u16>,
    /// default 8848
    pub port: u16,
    /// default 1
    pub ttl: u8,
    /// default 224.0.0.81
    pub group: IpAddr,
}

impl SyncOptions {
    /// The kernel's defaults on `interface`.
    pub fn on(interface: String) -> SyncOptions {
        SyncOptions {
            interface,
            sync_id: None,
            maxlen: None,
            port: 8848,
            ttl: 1,
            group: IpAddr::V4([224, 0, 0, 81].into()),
        }
    }
}

// ---------------------------------------------------------------- ferrovs { }

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Not named in the file: AF_XDP where the kernel has it, else AF_PACKET
    /// (with one log line saying why).
    #[default]
    Auto,
    Afxdp,
    Afpacket,
    Dpdk,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FerrovsSettings {
    pub backend: Backend,
    /// Worker threads; None lets the appliance choose.
    pub workers: Option<u32>,
    /// Ports the dataplane owns; empty = the interfaces the vrrp_instances name.
    pub interfaces: Vec<String>,
    pub dpdk: DpdkSettings,
    /// default 127.0.0.1:9180
    pub http_listen: SocketAddr,
    /// default /run/ferrovs/ctl.sock
    pub control_socket: PathBuf,
    /// `control_socket_group NAME|GID`: members of this group may use the
    /// control socket too (socket 0660, its directory 0750); None: root
    /// (or CAP_NET_ADMIN) alone (0600 / 0700).
    pub control_socket_group: Option<String>,
    /// Connection table entries per worker; default 1048576.
    pub conn_table_size: u32,
    /// `http_api local|on|off`: who may read the JSON API under
    /// `/api/v1/` (VRIDs, priorities, VIPs, servers). `local` (default):
    /// clients on a loopback address; `/metrics` and `/healthz` are served
    /// to whoever reaches `http_listen`.
    pub http_api: HttpApi,
    /// `xdp_fast_path on|off|auto` (AF_XDP backend): established DR flows
    /// are forwarded by the XDP program itself, without reaching a worker
    /// (dataplane/src/fastpath.rs). `auto` (None, the default): on for
    /// interfaces backed by a device (NICs), off for virtual ones (veth),
    /// where a frame the program transmits is lost unless the veth's peer
    /// runs an XDP program too.
    #[serde(default)]
    pub xdp_fast_path: Option<bool>,
    /// `sloppy_tcp on|off` (IPVS's `net.ipv4.vs.sloppy_tcp`): a TCP segment
    /// without SYN of a flow not in the table makes a connection instead
    /// of being dropped, so that a flow another director started (behind
    /// ECMP) goes on here; with `mh` every director picks the same server.
    #[serde(default)]
    pub sloppy_tcp: bool,
    /// `bgp { }`: announce the VIPs to routers (active-active behind ECMP).
    #[serde(default)]
    pub bgp: Option<BgpSettings>,
    /// `state_dir PATH|off`: where the connection tables live, as files the
    /// next process reads after an upgrade, a restart or a crash (issue
    /// 17); a tmpfs, so that they die with the boot. None: `off`, the
    /// tables on the heap and lost on a restart. Default /run/ferrovs/state.
    #[serde(default = "default_state_dir")]
    pub state_dir: Option<PathBuf>,
    /// `sync_active_active INTERFACE [id N] ...`: the master and the
    /// backup sync daemons both, from the start and whatever VRRP says,
    /// for directors that are all active behind ECMP (each sends its
    /// connections and installs the others'); instead of
    /// `lvs_sync_daemon`, which ties one role to a VRRP instance.
    #[serde(default)]
    pub sync_active_active: Option<SyncOptions>,
}

fn default_state_dir() -> Option<PathBuf> {
    Some(PathBuf::from("/run/ferrovs/state"))
}

/// `bgp { }` in the ferrovs block: the BGP speaker ferrovs drives (ExaBGP)
/// and the routers it peers with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BgpSettings {
    pub router_id: Ipv4Addr,
    pub local_as: u32,
    pub neighbors: Vec<BgpNeighbor>,
    /// `next_hop ADDR`; None: `next-hop self`.
    pub next_hop: Option<IpAddr>,
    pub med: Option<u32>,
    /// `community ASN:VALUE ...`
    pub communities: Vec<(u16, u16)>,
    /// `exabgp PATH`, default /usr/sbin/exabgp.
    pub exabgp: PathBuf,
    /// `drain_timeout SECONDS`: SIGTERM first withdraws every VIP and keeps
    /// forwarding until the connections end or this many seconds passed,
    /// then stops; 0 (the default): SIGTERM stops at once.
    #[serde(default)]
    pub drain_timeout: u64,
}

/// `neighbor ADDR { peer_as N; local_address ADDR; hold_time N; md5_password S }`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BgpNeighbor {
    pub address: IpAddr,
    pub peer_as: u32,
    pub local_address: IpAddr,
    /// Seconds (RFC 4271: 0, or 3 and more); default 90.
    pub hold_time: u16,
    pub md5_password: Option<String>,
}

/// Who may read the HTTP JSON API.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HttpApi {
    #[default]
    Local,
    On,
    Off,
}

impl Default for FerrovsSettings {
    fn default() -> Self {
        FerrovsSettings {
            backend: Backend::Auto,
            workers: None,
            interfaces: Vec::new(),
            dpdk: DpdkSettings::default(),
            http_listen: SocketAddr::from(([127, 0, 0, 1], 9180)),
            control_socket: PathBuf::from("/run/ferrovs/ctl.sock"),
            state_dir: default_state_dir(),
            control_socket_group: None,
            conn_table_size: 1 << 20,
            http_api: HttpApi::Local,
            xdp_fast_path: None,
            sloppy_tcp: false,
            bgp: None,
            sync_active_active: None,
        }
    }
}

impl FerrovsSettings {
    /// The dataplane's ports: `interface` lines, else every vrrp_instance's
    /// interface (deduplicated, in order).
    pub fn effective_interfaces(&self, cfg: &Config) -> Vec<String> {
        if !self.interfaces.is_empty() {
            return self.interfaces.clone();
        }
        let mut out: Vec<String> = Vec::new();
        for i in &cfg.vrrp_instances {
            if let Some(ifname) = &i.interface {
                if !out.contains(ifname) {
                    out.push(ifname.clone());
                }
            }
        }
        out
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DpdkSettings {
    /// EAL arguments, split on white space.
    pub eal_args: Vec<String>,
    /// `port IFNAME DEVICE`: the DPDK device (a vdev name such as
    /// `net_af_packet0`, or a PCI address) behind each dataplane interface.
    /// Interfaces without one take the probed devices in port-id order.
    pub ports: Vec<(String, String)>,
    /// Packet buffers per port; 0 sizes the pool from queues and
    /// descriptors.
    pub mbufs: u32,
    /// default 1024
    pub rx_desc: u16,
    /// default 1024
    pub tx_desc: u16,
    /// FULLNAT reply steering: `auto` tries NIC flow rules (rte_flow) and
    /// falls back to the software hand-over; `software` never tries.
    pub flow_steering: bool,
}

impl Default for DpdkSettings {
    fn default() -> Self {
        DpdkSettings {
            eal_args: Vec::new(),
            ports: Vec::new(),
            mbufs: 0,
            rx_desc: 1024,
            tx_desc: 1024,
            flow_steering: true,
        }
    }
}

// ---------------------------------------------------------------- VRRP

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VrrpScript {
    pub name: String,
    pub script: Script,
    /// default 1 s
    pub interval: Duration,
    /// default: interval
    pub timeout: Duration,
    /// Priority change while the script fails (negative) or succeeds
    /// (positive); default 0. `weight N reverse` inverts the sense.
    pub weight: i32,
    pub weight_reverse: bool,
    /// Failures before KO (default 1).
    pub fall: u32,
    /// Successes before OK (default 1).
    pub rise: u32,
    /// Start in the failed state (`init_fail`).
    pub init_fail: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SyncGroup {
    pub name: String,
    pub group: Vec<String>,
    pub track_interface: Vec<TrackInterface>,
    pub track_script: Vec<TrackScript>,
    pub notify: Notify,
    pub smtp_alert: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum VrrpState {
    Master,
    #[default]
    Backup,
}

/// Notify scripts (instance or sync group).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notify {
    pub master: Option<Script>,
    pub backup: Option<Script>,
    pub fault: Option<Script>,
    pub stop: Option<Script>,
    /// Called with `TYPE NAME STATE PRIORITY` on every transition.
    pub any: Option<Script>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthType {
    /// Simple text password (auth type 1).
    Pass,
    /// IPSEC AH (auth type 2).
    Ah,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Authentication {
    pub auth_type: AuthType,
    /// At most 8 bytes (longer passwords are cut, with a warning).
    pub auth_pass: String,
}

/// One `virtual_ipaddress` line: `ADDR[/LEN] [brd ADDR] [dev IF] [scope S] [label L]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct VirtualIp {
    pub addr: IpAddr,
    /// default 32 (IPv4) / 128 (IPv6)
    pub prefix_len: u8,
    pub brd: Option<IpAddr>,
    /// default: the instance's interface
    pub dev: Option<String>,
    pub scope: Option<String>,
    pub label: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackInterface {
    pub name: String,
    /// None: interface down = FAULT; Some(w): priority change instead.
    pub weight: Option<i32>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackScript {
    pub name: String,
    /// Overrides the script's own weight.
    pub weight: Option<i32>,
    pub weight_reverse: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VrrpInstance {
    pub name: String,
    /// Initial state (default BACKUP).
    pub state: VrrpState,
    pub interface: Option<String>,
    pub virtual_router_id: u8,
    /// 1–255, default 100.
    pub priority: u8,
    /// default 1 s
    pub advert_int: Duration,
    /// 2 or 3; default the global vrrp_version.
    pub version: u8,
    pub nopreempt: bool,
    /// 0–1000 s, default 0.
    pub preempt_delay: Duration,
    pub authentication: Option<Authentication>,
    pub virtual_ipaddress: Vec<VirtualIp>,
    pub virtual_ipaddress_excluded: Vec<VirtualIp>,
    pub track_interface: Vec<TrackInterface>,
    pub track_script: Vec<TrackScript>,
    pub unicast_src_ip: Option<IpAddr>,
    pub unicast_peer: Vec<UnicastPeer>,
    /// `mcast_src_ip`: source of multicast adverts.
    pub mcast_src_ip: Option<IpAddr>,
    pub notify: Notify,
    pub smtp_alert: bool,
    /// Effective GARP settings (global vrrp_garp_* overridden per instance).
    pub garp: GarpSettings,
    /// Deprecated per-instance `lvs_sync_daemon_interface`.
    pub lvs_sync_daemon_interface: Option<String>,
    pub dont_track_primary: bool,
    /// `accept` / `no_accept` (VRRPv3 accept mode); None = keepalived's default.
    pub accept: Option<bool>,
    pub use_vmac: Option<String>,
}

/// One `unicast_peer` entry: `ADDRESS [min_ttl N] [max_ttl N]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnicastPeer {
    pub address: IpAddr,
    /// The TTL/hop-limit range adverts from this peer must arrive with
    /// (keepalived 2.2's per-peer check); unset means 255, as RFC 5798
    /// §7.1 asks of every advert.
    pub min_ttl: Option<u8>,
    pub max_ttl: Option<u8>,
}

// ---------------------------------------------------------------- LVS

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum Protocol {
    #[default]
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }
    /// IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
        }
    }
}

/// Forwarding method (`lb_kind` / `lvs_method`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LbKind {
    Dr,
    #[default]
    Nat,
    Tun,
    FullNat,
}

impl LbKind {
    /// The keyword keepalived/DPVS use.
    pub fn keyword(self) -> &'static str {
        match self {
            LbKind::Dr => "DR",
            LbKind::Nat => "NAT",
            LbKind::Tun => "TUN",
            LbKind::FullNat => "FNAT",
        }
    }
}

/// Scheduler flags (`-b` in ipvsadm, flag keywords in keepalived).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SchedFlags {
    pub sh_port: bool,
    pub sh_fallback: bool,
    pub mh_port: bool,
    pub mh_fallback: bool,
    /// Generic flag-1..3 for schedulers other than sh/mh.
    pub flag1: bool,
    pub flag2: bool,
    pub flag3: bool,
}

impl SchedFlags {
    pub fn is_empty(&self) -> bool {
        *self == SchedFlags::default()
    }
}

/// An IPVS scheduler, named as ipvsadm (`-s`) and keepalived (`lb_algo`)
/// name it. Parsing is exact, like the kernel's scheduler lookup; an
/// unknown name is refused where the configuration or command is read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheduler {
    Rr,
    Wrr,
    Lc,
    /// ipvsadm's and keepalived's default.
    #[default]
    Wlc,
    Lblc,
    Lblcr,
    Dh,
    Sh,
    Sed,
    Nq,
    Fo,
    Ovf,
    Mh,
    Twos,
}

impl Scheduler {
    pub const ALL: [Scheduler; 14] = [
        Scheduler::Rr,
        Scheduler::Wrr,
        Scheduler::Lc,
        Scheduler::Wlc,
        Scheduler::Lblc,
        Scheduler::Lblcr,
        Scheduler::Dh,
        Scheduler::Sh,
        Scheduler::Sed,
        Scheduler::Nq,
        Scheduler::Fo,
        Scheduler::Ovf,
        Scheduler::Mh,
        Scheduler::Twos,
    ];

    /// The name ipvsadm prints and reads.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheduler::Rr => "rr",
            Scheduler::Wrr => "wrr",
            Scheduler::Lc => "lc",
            Scheduler::Wlc => "wlc",
            Scheduler::Lblc => "lblc",
            Scheduler::Lblcr => "lblcr",
            Scheduler::Dh => "dh",
            Scheduler::Sh => "sh",
            Scheduler::Sed => "sed",
            Scheduler::Nq => "nq",
            Scheduler::Fo => "fo",
            Scheduler::Ovf => "ovf",
            Scheduler::Mh => "mh",
            Scheduler::Twos => "twos",
        }
    }
}

impl fmt::Display for Scheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A scheduler name that is not one of [`Scheduler::ALL`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown scheduler '{0}'")]
pub struct UnknownScheduler(pub String);

impl FromStr for Scheduler {
    type Err = UnknownScheduler;

    fn from_str(s: &str) -> Result<Scheduler, UnknownScheduler> {
        Scheduler::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownScheduler(s.to_string()))
    }
}

/// A virtual server's scheduler and its flags.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SchedulerSettings {
    /// `lb_algo`; wlc when not given.
    pub name: Scheduler,
    pub flags: SchedFlags,
}

/// Persistence granularity: an IPv4 netmask or an IPv6 prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Netmask {
    V4(Ipv4Addr),
    V6(u8),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Persistence {
    /// default 360 s when persistence is on
    pub timeout: u32,
    /// default 255.255.255.255 (/128)
    pub granularity: Netmask,
}

/// What a `virtual_server` line names.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum VsAddress {
    /// `virtual_server IP PORT` (port 0 = all ports, persistent only).
    Addr { addr: IpAddr, port: u16 },
    /// `virtual_server fwmark N`
    Fwmark(u32),
    /// `virtual_server group NAME`
    Group(String),
}

/// Retry / timing options every checker has, resolved through the
/// checker → real_server → virtual_server → keepalived default chain.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CheckerCommon {
    /// Address to connect to (default: the real server's).
    pub connect_ip: Option<IpAddr>,
    /// default: the real server's port
    pub connect_port: Option<u16>,
    /// Source address.
    pub bindto: Option<IpAddr>,
    pub bind_port: Option<u16>,
    pub bind_if: Option<String>,
    /// default 5 s
    pub connect_timeout: Duration,
    /// Failures before the server is marked down: default 1 (MISC 0, DNS 3).
    pub retry: u32,
    /// Delay between retries: default 1 s (HTTP/SSL 3 s; DNS: delay_loop).
    pub delay_before_retry: Duration,
    /// Random delay before the first check; default delay_loop.
    pub warmup: Duration,
    /// Interval between checks; default 60 s.
    pub delay_loop: Duration,
    /// Starts in the failed state.
    pub alpha: bool,
    /// Firewall mark on the checker's packets.
    pub fwmark: Option<u32>,
}

/// An accepted HTTP status range (inclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StatusRange {
    pub min: u16,
    pub max: u16,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HttpUrl {
    pub path: String,
    /// MD5 hex digest of the body, if checked.
    pub digest: Option<String>,
    /// default [200-299]
    pub status_code: Vec<StatusRange>,
    /// Overrides the checker's virtualhost.
    pub virtualhost: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HttpCheck {
    /// SSL_GET
    pub tls: bool,
    pub urls: Vec<HttpUrl>,
    /// Host header (checker, else real_server, else virtual_server virtualhost).
    pub virtualhost: Option<String>,
    /// "1.0" (default), "1.0C", "1.1"
    pub http_protocol: Option<String>,
    pub enable_sni: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MiscCheck {
    pub path: Script,
    /// default: delay_loop
    pub timeout: Option<Duration>,
    /// exit 0 up, 1 down, 2..255 up with weight code-2
    pub dynamic: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DnsCheck {
    /// Query type, default SOA.
    pub qtype: String,
    /// Query name, default "." (root).
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CheckerKind {
    Tcp,
    Http(HttpCheck),
    Misc(MiscCheck),
    Dns(DnsCheck),
}

impl CheckerKind {
    pub fn keyword(&self) -> &'static str {
        match self {
            CheckerKind::Tcp => "TCP_CHECK",
            CheckerKind::Http(h) if h.tls => "SSL_GET",
            CheckerKind::Http(_) => "HTTP_GET",
            CheckerKind::Misc(_) => "MISC_CHECK",
            CheckerKind::Dns(_) => "DNS_CHECK",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Checker {
    pub kind: CheckerKind,
    pub common: CheckerCommon,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RealServer {
    pub addr: IpAddr,
    /// Resolved like keepalived: missing → service port; DR/TUN → the
    /// service port; fwmark services (non-NAT) → 0.
    pub port: u16,
    /// 0–65535, default the virtual server's `weight` (itself default 1).
    pub weight: u32,
    pub fwd: LbKind,
    pub inhibit_on_failure: bool,
    pub notify_up: Option<Script>,
    pub notify_down: Option<Script>,
    /// 0 = no limit
    pub uthreshold: u32,
    pub lthreshold: u32,
    pub checkers: Vec<Checker>,
    /// Starts down until a check succeeds (any checker with alpha).
    pub alpha: bool,
}

impl RealServer {
    /// Whether keepalived considers the server up right after loading:
    /// servers with an alpha checker start down.
    pub fn initially_alive(&self) -> bool {
        !self.checkers.iter().any(|c| c.common.alpha)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SorryServer {
    pub addr: IpAddr,
    pub port: u16,
    pub fwd: LbKind,
    pub inhibit: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VirtualServer {
    pub address: VsAddress,
    /// default: keepalived 2.2 sets UDP with a warning when omitted for an
    /// address service.
    pub protocol: Protocol,
    /// Health-check interval default for the checkers (default 60 s).
    pub delay_loop: Duration,
    pub scheduler: SchedulerSettings,
    /// One-packet scheduling (UDP).
    pub ops: bool,
    /// DPVS `syn_proxy`: the director answers TCP handshakes with SYN
    /// cookies and contacts the real server only for clients that complete
    /// them. NAT and FNAT only.
    #[serde(default)]
    pub syn_proxy: bool,
    /// Default forwarding method of the real servers (default NAT).
    pub lb_kind: LbKind,
    pub persistence: Option<Persistence>,
    pub persistence_engine: Option<String>,
    pub sorry_server: Option<SorryServer>,
    /// Failed servers stay with weight 0 instead of being removed.
    pub inhibit_on_failure: bool,
    /// Minimum summed weight of live servers (default 1).
    pub quorum: u32,
    pub hysteresis: u32,
    pub quorum_up: Option<Script>,
    pub quorum_down: Option<Script>,
    /// Checkers start failed.
    pub alpha: bool,
    /// Run quorum_down / notify_down on shutdown.
    pub omega: bool,
    /// Disable checks while the VIP is not held.
    pub ha_suspend: bool,
    pub virtualhost: Option<String>,
    /// FULLNAT local addresses (`laddr_group_name`).
    pub laddr_group_name: Option<String>,
    pub real_servers: Vec<RealServer>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum VsgEntry {
    /// `ADDR[-LAST] PORT`: one service per address of the range.
    Range {
        first: IpAddr,
        last: IpAddr,
        port: u16,
    },
    Fwmark(u32),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VirtualServerGroup {
    pub name: String,
    pub entries: Vec<VsgEntry>,
}

/// `ADDR[-LAST] [IFNAME]` in a local_address_group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalAddressRange {
    pub first: IpAddr,
    pub last: IpAddr,
    pub interface: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalAddressGroup {
    pub name: String,
    pub ranges: Vec<LocalAddressRange>,
}

impl VirtualServer {
    /// Whether it forwards by FULLNAT: declared `lb_kind FNAT`, or with a
    /// real server that is.
    pub fn forwards_by_fullnat(&self) -> bool {
        self.lb_kind == LbKind::FullNat
            || self.real_servers.iter().any(|r| r.fwd == LbKind::FullNat)
    }
}

impl LocalAddressGroup {
    /// Every address of every range, in order.
    pub fn addresses(&self) -> Vec<IpAddr> {
        let mut out = Vec::new();
        for r in &self.ranges {
            out.extend(addr_range(r.first, r.last));
        }
        out
    }
}

/// Inclusive address range (empty when `last < first` or families differ).
pub fn addr_range(first: IpAddr, last: IpAddr) -> Vec<IpAddr> {
    match (first, last) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u32::from(a)..=u32::from(b))
            .map(|x| IpAddr::V4(x.into()))
            .collect(),
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let (a, b) = (u128::from(a), u128::from(b));
            if b < a || b - a > 65535 {
                return Vec::new();
            }
            (a..=b).map(|x| IpAddr::V6(x.into())).collect()
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduler_names_are_ipvsadm_names() {
        let names: Vec<String> = Scheduler::ALL.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            names,
            [
                "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf",
                "mh", "twos"
            ]
        );
        for s in Scheduler::ALL {
            assert_eq!(s.as_str().parse::<Scheduler>(), Ok(s));
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
        assert_eq!(Scheduler::default(), Scheduler::Wlc);
        // Exact names only, as the kernel looks them up.
        for bad in ["RR", "", "nope", " rr"] {
            assert_eq!(
                bad.parse::<Scheduler>(),
                Err(UnknownScheduler(bad.to_string()))
            );
        }
    }
}
