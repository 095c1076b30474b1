//! VRRP advertisement codec: VRRPv2 over IPv4 (RFC 3768 §5) and VRRPv3
//! over IPv4 and IPv6 (RFC 5798 §5).
//!
//! The family of an advert is its IP header's: the addresses it carries are
//! 4 bytes over IPv4 and 16 over IPv6 (RFC 5798 §5.2.9), and the v3
//! checksum covers the pseudo-header of that family (RFC 5798 §5.2.8, RFC
//! 8200 §8.1 for IPv6). VRRPv2 is defined over IPv4 only (RFC 3768): a v2
//! message over IPv6 is refused.
//!
//! [`Advert::parse`] checks what can be checked without knowing the receiving
//! instance (version, type, length against the address count, checksum);
//! [`Advert::check`] adds the per-instance checks keepalived's
//! `vrrp_check_packet()` makes, in its order (TTL, version, auth, v2 interval,
//! address count, unicast/multicast, VIP list).

use ferrovs_dataplane::wire::checksum;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

/// IP protocol number of VRRP.
pub const IPPROTO_VRRP: u8 = 112;
/// TTL (hop limit over IPv6) of every advert we send, and the one a
/// multicast advert must carry (RFC 3768 §7.1, RFC 5798 §5.1.1.3, §5.1.2.3,
/// §7.1).
pub const VRRP_TTL: u8 = 255;
/// Length of the v2 authentication data (RFC 3768 §5.3.10).
pub const AUTH_DATA_LEN: usize = 8;
/// The fixed VRRP header: version/type, VRID, priority, count, two words.
pub const HEADER_LEN: usize = 8;
/// The only packet type (RFC 3768 §5.3.2, RFC 5798 §5.2.2).
pub const TYPE_ADVERTISEMENT: u8 = 1;
/// v2 auth types (RFC 3768 §5.3.6; keepalived still knows 1 and 2).
pub const AUTH_NONE: u8 = 0;
pub const AUTH_PASS: u8 = 1;
pub const AUTH_AH: u8 = 2;
/// Largest VRRPv3 Max Adver Int: 12 bits of centiseconds (RFC 5798 §5.2.7).
pub const V3_MAX_INTERVAL_CS: u16 = 0x0fff;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Version {
    V2,
    V3,
}

impl Version {
    pub fn number(self) -> u8 {
        match self {
            Version::V2 => 2,
            Version::V3 => 3,
        }
    }
    pub fn from_number(n: u8) -> Option<Version> {
        match n {
            2 => Some(Version::V2),
            3 => Some(Version::V3),
            _ => None,
        }
    }
}

/// One VRRP advertisement (the VRRP message, without the IP header).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Advert {
    pub version: Version,
    pub vrid: u8,
    pub priority: u8,
    /// Advertisement interval as carried: seconds (v2, 8 bits) or
    /// centiseconds (v3, 12 bits).
    pub interval: u16,
    /// Of the advert's IP family (v2: IPv4 only).
    pub addresses: Vec<IpAddr>,
    /// v2 only (0 for v3).
    pub auth_type: u8,
    /// v2 only: the password, cut to 8 bytes and zero padded (all zero for
    /// v3 and for auth type 0).
    pub auth_data: [u8; AUTH_DATA_LEN],
}

/// Why a received advert is not accepted. `Drop` kinds are the ones
/// keepalived calls VRRP_PACKET_DROP (not an error of the sender: another
/// router's configuration); the rest are VRRP_PACKET_KO.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PacketError {
    TooShort {
        len: usize,
    },
    NotIpv4,
    BadIpHeader,
    IpTotalLength {
        header: usize,
        received: usize,
    },
    Protocol(u8),
    Version(u8),
    /// VRRPv2 exists over IPv4 only (RFC 3768; keepalived's strict mode
    /// refuses it, and ferrovs runs IPv6 instances as v3).
    V2OverIpv6,
    Type(u8),
    Length {
        len: usize,
        expected: usize,
    },
    Checksum {
        carried: u16,
        computed: u16,
    },
    // Checks against the receiving instance (`Advert::check`).
    Vrid {
        received: u8,
        ours: u8,
    },
    Ttl {
        received: u8,
    },
    VersionMismatch {
        received: u8,
        ours: u8,
    },
    InvalidAuthType(u8),
    AuthTypeMismatch {
        received: u8,
        ours: u8,
    },
    BadPassword,
    /// v2 interval differs from ours: dropped "to prevent concurrent VRID
    /// running => multiple master in 1 VRID" (keepalived).
    IntervalMismatch {
        received: u16,
        ours: u16,
    },
    AddressCount {
        received: usize,
        ours: usize,
    },
    UnexpectedCast {
        multicast: bool,
    },
    MissingVip(IpAddr),
    UnknownUnicastSource(IpAddr),
    /// A multicast IPv6 advert whose source is not link-local: RFC 5798
    /// §5.1.2.1 has the router send from its link-local address, so it was
    /// not sent by a VRRP router on this link.
    NotLinkLocal(Ipv6Addr),
    TtlRange {
        received: u8,
        src: IpAddr,
        min: u8,
        max: u8,
    },
}

impl fmt::Display for PacketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use PacketError::*;
        match self {
            TooShort { len } => write!(f, "VRRP packet too short - {len} bytes"),
            NotIpv4 => write!(f, "not an IPv4 packet"),
            BadIpHeader => write!(f, "bad IPv4 header length"),
            IpTotalLength { header, received } => write!(
                f,
                "ip_tot_len mismatch against received length. {header} and received {received}"
            ),
            Protocol(p) => write!(f, "IP protocol {p} is not VRRP"),
            Version(v) => write!(f, "unknown VRRP version {v}"),
            V2OverIpv6 => write!(f, "VRRP version 2 over IPv6"),
            Type(t) => write!(f, "Invalid packet type. {t} and expect 1"),
            Length { len, expected } => write!(
                f,
                "vrrp packet too {}, length {len} and expect {expected}",
                if len > expected { "long" } else { "short" }
            ),
            Checksum { carried, computed } => write!(
                f,
                "Invalid VRRP checksum {carried:#06x} (computed {computed:#06x})"
            ),
            Vrid { received, ours } => write!(f, "VRID {received} is not ours ({ours})"),
            Ttl { received } => write!(f, "invalid TTL/HL. Received {received} and expect 255"),
            VersionMismatch { received, ours } => {
                write!(f, "wrong version. Received {received} and expect {ours}")
            }
            InvalidAuthType(t) => write!(f, "Invalid auth type: {t}"),
            AuthTypeMismatch { received, ours } => {
                write!(f, "received a {received} auth, expecting {ours}!")
            }
            BadPassword => write!(f, "received an invalid passwd!"),
            IntervalMismatch { received, ours } => write!(
                f,
                "advertisement interval mismatch mine={ours} sec rcv'd={received} sec"
            ),
            AddressCount { received, ours } => write!(
                f,
                "received an unexpected ip number count {received}, expected {ours}!"
            ),
            UnexpectedCast { multicast } => write!(
                f,
                "Expected {}icast packet but received {}icast packet",
                if *multicast { "un" } else { "mult" },
                if *multicast { "mult" } else { "un" }
            ),
            MissingVip(a) => write!(
                f,
                "ip address associated with VRID not present in MASTER advert: {a}"
            ),
            UnknownUnicastSource(a) => write!(f, "unicast source address {a} not a unicast peer"),
            NotLinkLocal(a) => write!(f, "IPv6 source address {a} is not link-local"),
            TtlRange {
                received,
                src,
                min,
                max,
            } => write!(
                f,
                "TTL/HL {received} from {src} not in range [{min}, {max}]"
            ),
        }
    }
}

impl std::error::Error for PacketError {}

impl PacketError {
    /// keepalived's VRRP_PACKET_DROP (as opposed to VRRP_PACKET_KO): only the
    /// v2 interval mismatch.
    pub fn is_drop(&self) -> bool {
        matches!(self, PacketError::IntervalMismatch { .. })
    }
}

/// The password as carried in a v2 advert: cut to 8 bytes, zero padded
/// (RFC 3768 §5.3.10; keepalived cuts `auth_pass` the same way).
pub fn pass_data(pass: &str) -> [u8; AUTH_DATA_LEN] {
    let mut d = [0u8; AUTH_DATA_LEN];
    let b = pass.as_bytes();
    let n = b.len().min(AUTH_DATA_LEN);
    d[..n].copy_from_slice(&b[..n]);
    d
}

/// What the receiving instance expects of an advert (keepalived's
/// `vrrp_check_packet()` inputs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expect<'a> {
    pub version: Version,
    /// 0 (none) or 1 (PASS) for v2; 0 for v3.
    pub auth_type: u8,
    pub auth_data: [u8; AUTH_DATA_LEN],
    /// Our configured interval in the packet's unit (v2: seconds).
    pub interval: u16,
    /// Our VIPs; checked against the advert when `check_addresses`.
    pub vips: &'a [IpAddr],
    pub check_addresses: bool,
    /// Unicast instance (unicast_peer given).
    pub unicast: bool,
    /// The unicast peers adverts may come from (unicast instances).
    pub peers: &'a [PeerCheck],
}

/// A `unicast_peer` as the receive check sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerCheck {
    pub addr: IpAddr,
    /// The TTL range its adverts must arrive with (255..=255 unless the
    /// operator gave `min_ttl`/`max_ttl`).
    pub min_ttl: u8,
    pub max_ttl: u8,
}

/// What the caller knows of the received IP header (over IPv6, from the
/// socket: the source from `recvmsg`, the destination from IPV6_PKTINFO and
/// the hop limit from IPV6_HOPLIMIT, as a raw IPv6 socket does not hand
/// the header over).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxInfo {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// TTL (IPv4) or hop limit (IPv6).
    pub ttl: u8,
}

impl RxInfo {
    pub fn multicast(&self) -> bool {
        self.dst.is_multicast()
    }
}

/// Bytes of one address in an advert of that family (RFC 5798 §5.2.9).
pub fn addr_len(ipv6: bool) -> usize {
    if ipv6 {
        16
    } else {
        4
    }
}

/// Wire length of a VRRP message with `count` addresses of a family.
pub fn message_len(version: Version, count: usize, ipv6: bool) -> usize {
    HEADER_LEN
        + addr_len(ipv6) * count
        + match version {
            Version::V2 => AUTH_DATA_LEN,
            Version::V3 => 0,
        }
}

/// The v3 checksum's pseudo-header partial sum (RFC 5798 §5.2.8): over
/// IPv4 source, destination, zero, protocol 112, VRRP length; over IPv6
/// (RFC 8200 §8.1) source, destination, the VRRP length as 32 bits, three
/// zero bytes and next header 112. Addresses of two families (no caller
/// builds them) are summed as IPv4-mapped IPv6 ones.
fn v3_pseudo_sum(src: IpAddr, dst: IpAddr, len: usize) -> u32 {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            checksum::pseudo_header_v4(s.octets(), d.octets(), IPPROTO_VRRP, len as u16)
        }
        (s, d) => {
            checksum::pseudo_header_v6(&v6(s).octets(), &v6(d).octets(), IPPROTO_VRRP, len as u32)
        }
    }
}

fn v6(a: IpAddr) -> Ipv6Addr {
    match a {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    }
}

/// RFC 4291 §2.5.6: fe80::/10.
pub fn is_link_local(a: &Ipv6Addr) -> bool {
    a.segments()[0] & 0xffc0 == 0xfe80
}

impl Advert {
    /// A VRRPv2 advert; `password` Some for auth type 1 (PASS).
    pub fn v2(
        vrid: u8,
        priority: u8,
        interval_secs: u8,
        addresses: Vec<Ipv4Addr>,
        password: Option<&str>,
    ) -> Advert {
        let (auth_type, auth_data) = match password {
            Some(p) => (AUTH_PASS, pass_data(p)),
            None => (AUTH_NONE, [0; AUTH_DATA_LEN]),
        };
        Advert {
            version: Version::V2,
            vrid,
            priority,
            interval: interval_secs as u16,
            addresses: addresses.into_iter().map(IpAddr::V4).collect(),
            auth_type,
            auth_data,
        }
    }

    /// A VRRPv3 advert (addresses of one family); the interval is cut to
    /// its 12 bits.
    pub fn v3<A: Into<IpAddr>>(
        vrid: u8,
        priority: u8,
        interval_cs: u16,
        addresses: Vec<A>,
    ) -> Advert {
        Advert {
            version: Version::V3,
            vrid,
            priority,
            interval: interval_cs.min(V3_MAX_INTERVAL_CS),
            addresses: addresses.into_iter().map(Into::into).collect(),
            auth_type: AUTH_NONE,
            auth_data: [0; AUTH_DATA_LEN],
        }
    }

    /// The interval as a duration (v2 seconds, v3 centiseconds).
    pub fn interval_duration(&self) -> Duration {
        match self.version {
            Version::V2 => Duration::from_secs(self.interval as u64),
            Version::V3 => Duration::from_millis(self.interval as u64 * 10),
        }
    }

    pub fn len(&self) -> usize {
        let count = self.addresses.len().min(255);
        HEADER_LEN
            + self.addresses[..count]
                .iter()
                .map(|a| addr_len(a.is_ipv6()))
                .sum::<usize>()
            + match self.version {
                Version::V2 => AUTH_DATA_LEN,
                Version::V3 => 0,
            }
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// The VRRP message with its checksum. `src`/`dst` are the IP header's
    /// addresses: v3 covers them through the pseudo-header (for unicast the
    /// destination is the peer the copy goes to); v2 ignores them. Each
    /// address is written in its family's length: an instance's are all of
    /// its own family.
    pub fn encode(&self, src: impl Into<IpAddr>, dst: impl Into<IpAddr>) -> Vec<u8> {
        let (src, dst) = (src.into(), dst.into());
        let count = self.addresses.len().min(255);
        let mut b = Vec::with_capacity(self.len());
        b.push((self.version.number() << 4) | TYPE_ADVERTISEMENT);
        b.push(self.vrid);
        b.push(self.priority);
        b.push(count as u8);
        match self.version {
            Version::V2 => {
                b.push(self.auth_type);
                b.push(self.interval.min(255) as u8);
            }
            Version::V3 => {
                // 4 reserved bits (zero) + 12-bit Max Adver Int.
                let iv = self.interval & V3_MAX_INTERVAL_CS;
                b.extend_from_slice(&iv.to_be_bytes());
            }
        }
        b.extend_from_slice(&[0, 0]);
        for a in &self.addresses[..count] {
            match a {
                IpAddr::V4(a) => b.extend_from_slice(&a.octets()),
                IpAddr::V6(a) => b.extend_from_slice(&a.octets()),
            }
        }
        if self.version == Version::V2 {
            b.extend_from_slice(&self.auth_data);
        }
        let csum = match self.version {
            Version::V2 => checksum::checksum(&b),
            Version::V3 => !checksum::fold(checksum::add(
                v3_pseudo_sum(src, dst, b.len()),
                checksum::sum(&b),
            )),
        };
        b[6..8].copy_from_slice(&csum.to_be_bytes());
        b
    }

    /// The advert inside a complete IPv4 packet as keepalived builds it
    /// (`vrrp_build_ip4`): no options, TOS 0xc0 (network control), id 0,
    /// DF clear, TTL 255, protocol 112.
    pub fn encode_ipv4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
        let msg = self.encode(src, dst);
        let total = 20 + msg.len();
        let mut b = Vec::with_capacity(total);
        b.extend_from_slice(&[0x45, 0xc0]);
        b.extend_from_slice(&(total as u16).to_be_bytes());
        b.extend_from_slice(&[0, 0, 0, 0, VRRP_TTL, IPPROTO_VRRP, 0, 0]);
        b.extend_from_slice(&src.octets());
        b.extend_from_slice(&dst.octets());
        let c = checksum::checksum(&b[..20]);
        b[10..12].copy_from_slice(&c.to_be_bytes());
        b.extend_from_slice(&msg);
        b
    }

    /// Parses a VRRP message received from `src` to `dst` (the IP header's
    /// addresses, whose family is the advert's) and verifies its version,
    /// type, length and checksum.
    pub fn parse(
        msg: &[u8],
        src: impl Into<IpAddr>,
        dst: impl Into<IpAddr>,
    ) -> Result<Advert, PacketError> {
        let (src, dst) = (src.into(), dst.into());
        let ipv6 = src.is_ipv6();
        if msg.len() < HEADER_LEN {
            return Err(PacketError::TooShort { len: msg.len() });
        }
        let version = Version::from_number(msg[0] >> 4).ok_or(PacketError::Version(msg[0] >> 4))?;
        if ipv6 && version == Version::V2 {
            return Err(PacketError::V2OverIpv6);
        }
        let count = msg[3] as usize;
        // RFC 3768 §7.1 / RFC 5798 §7.1: the packet must hold the whole
        // message; keepalived insists on an exact length.
        let expected = message_len(version, count, ipv6);
        if msg.len() != expected {
            return Err(PacketError::Length {
                len: msg.len(),
                expected,
            });
        }
        if msg[0] & 0x0f != TYPE_ADVERTISEMENT {
            return Err(PacketError::Type(msg[0] & 0x0f));
        }
        let carried = u16::from_be_bytes([msg[6], msg[7]]);
        let total = match version {
            Version::V2 => checksum::sum(msg),
            Version::V3 => checksum::add(v3_pseudo_sum(src, dst, msg.len()), checksum::sum(msg)),
        };
        // A correct message sums (checksum field included) to 0xffff.
        if checksum::fold(total) != 0xffff {
            let mut zeroed = msg.to_vec();
            zeroed[6] = 0;
            zeroed[7] = 0;
            let computed = match version {
                Version::V2 => checksum::checksum(&zeroed),
                Version::V3 => !checksum::fold(checksum::add(
                    v3_pseudo_sum(src, dst, msg.len()),
                    checksum::sum(&zeroed),
                )),
            };
            return Err(PacketError::Checksum { carried, computed });
        }
        let al = addr_len(ipv6);
        let addresses = msg[HEADER_LEN..HEADER_LEN + al * count]
            .chunks_exact(al)
            .map(|c| {
                let mut o = [0u8; 16];
                o[..al].copy_from_slice(c);
                if ipv6 {
                    IpAddr::V6(Ipv6Addr::from(o))
                } else {
                    IpAddr::V4(Ipv4Addr::new(o[0], o[1], o[2], o[3]))
                }
            })
            .collect();
        let (interval, auth_type, mut auth_data) = match version {
            Version::V2 => (msg[5] as u16, msg[4], [0u8; AUTH_DATA_LEN]),
            Version::V3 => (
                u16::from_be_bytes([msg[4], msg[5]]) & V3_MAX_INTERVAL_CS,
                AUTH_NONE,
                [0u8; AUTH_DATA_LEN],
            ),
        };
        if version == Version::V2 {
            auth_data.copy_from_slice(&msg[msg.len() - AUTH_DATA_LEN..]);
        }
        Ok(Advert {
            version,
            vrid: msg[1],
            priority: msg[2],
            interval,
            addresses,
            auth_type,
            auth_data,
        })
    }

    /// Parses a whole IPv4 packet (header included, as a raw socket hands it
    /// over): IPv4, total length equal to what was received, protocol 112.
    pub fn parse_ipv4(pkt: &[u8]) -> Result<(RxInfo, Advert), PacketError> {
        if pkt.len() < 20 {
            return Err(PacketError::TooShort { len: pkt.len() });
        }
        if pkt[0] >> 4 != 4 {
            return Err(PacketError::NotIpv4);
        }
        let ihl = ((pkt[0] & 0x0f) as usize) * 4;
        if ihl < 20 || pkt.len() < ihl + HEADER_LEN {
            return Err(PacketError::BadIpHeader);
        }
        let tot = u16::from_be_bytes([pkt[2], pkt[3]]) as usize;
        if tot != pkt.len() {
            return Err(PacketError::IpTotalLength {
                header: tot,
                received: pkt.len(),
            });
        }
        if pkt[9] != IPPROTO_VRRP {
            return Err(PacketError::Protocol(pkt[9]));
        }
        let rx = RxInfo {
            src: Ipv4Addr::new(pkt[12], pkt[13], pkt[14], pkt[15]).into(),
            dst: Ipv4Addr::new(pkt[16], pkt[17], pkt[18], pkt[19]).into(),
            ttl: pkt[8],
        };
        let adv = Advert::parse(&pkt[ihl..], rx.src, rx.dst)?;
        Ok((rx, adv))
    }

    /// The per-instance checks of keepalived's `vrrp_check_packet()`, in its
    /// order.
    pub fn check(&self, rx: &RxInfo, ex: &Expect<'_>) -> Result<(), PacketError> {
        // RFC 3768 §7.1 / RFC 5798 §7.1: TTL must be 255. keepalived
        // checks it only for multicast instances (unicast peers may be
        // routed); a unicast advert's TTL is checked against its peer's
        // range below.
        if !ex.unicast && rx.ttl != VRRP_TTL {
            return Err(PacketError::Ttl { received: rx.ttl });
        }
        // RFC 5798 §5.1.2.1: a router sends its IPv6 adverts from its
        // link-local address. keepalived 2.2 does not check it on receive;
        // ferrovs does for multicast (as it applies check_unicast_src to
        // unicast): with hop limit 255 it keeps a host that forged a global
        // source from winning the election by the address tie-break.
        if let IpAddr::V6(s) = rx.src {
            if !ex.unicast && !is_link_local(&s) {
                return Err(PacketError::NotLinkLocal(s));
            }
        }
        if self.version != ex.version {
            return Err(PacketError::VersionMismatch {
                received: self.version.number(),
                ours: ex.version.number(),
            });
        }
        if self.version == Version::V2 {
            if self.auth_type > AUTH_AH {
                return Err(PacketError::InvalidAuthType(self.auth_type));
            }
            if self.auth_type != ex.auth_type {
                return Err(PacketError::AuthTypeMismatch {
                    received: self.auth_type,
                    ours: ex.auth_type,
                });
            }
            if ex.auth_type == AUTH_PASS && !constant_time_eq(&self.auth_data, &ex.auth_data) {
                return Err(PacketError::BadPassword);
            }
            // RFC 3768 §7.1: MUST verify the interval is ours (else drop).
            if self.interval != ex.interval {
                return Err(PacketError::IntervalMismatch {
                    received: self.interval,
                    ours: ex.interval,
                });
            }
        }
        if ex.check_addresses && self.addresses.len() != ex.vips.len() {
            return Err(PacketError::AddressCount {
                received: self.addresses.len(),
                ours: ex.vips.len(),
            });
        }
        // Unicast instances take unicast adverts only, multicast ones
        // multicast only (keepalived).
        if rx.multicast() == ex.unicast {
            return Err(PacketError::UnexpectedCast {
                multicast: rx.multicast(),
            });
        }
        // RFC 3768 §7.1 / RFC 5798 §7.1: MAY verify the address list.
        if ex.check_addresses {
            if let Some(v) = ex.vips.iter().find(|v| !self.addresses.contains(v)) {
                return Err(PacketError::MissingVip(*v));
            }
        }
        // keepalived's `check_unicast_src`, always on here: a unicast
        // advert comes from a configured peer, with that peer's TTL range
        // (255 unless `min_ttl`/`max_ttl` say otherwise). Without it any
        // host that can reach us takes the VIPs with priority 254.
        if ex.unicast {
            let Some(p) = ex.peers.iter().find(|p| p.addr == rx.src) else {
                return Err(PacketError::UnknownUnicastSource(rx.src));
            };
            if !(p.min_ttl..=p.max_ttl).contains(&rx.ttl) {
                return Err(PacketError::TtlRange {
                    received: rx.ttl,
                    src: rx.src,
                    min: p.min_ttl,
                    max: p.max_ttl,
                });
            }
        }
        Ok(())
    }
}

/// Compares passwords in time independent of where they differ, as
/// keepalived does (`memcmp_constant_time`).
fn constant_time_eq(a: &[u8; AUTH_DATA_LEN], b: &[u8; AUTH_DATA_LEN]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_v3_message_whose_sum_nears_2_to_32_is_refused_not_a_panic() {
        // Found by the vrrp_packet fuzzer: the message's 32-bit partial sum
        // plus the pseudo header's overflowed.
        let msg = [
            0x31, 0x33, 0x96, 0x01, 0x00, 0x00, 0x00, 0xe6, 0xce, 0xcc, 0x69, 0x64,
        ];
        let r = Advert::parse(
            &msg,
            Ipv4Addr::new(198, 18, 0, 2),
            Ipv4Addr::new(224, 0, 0, 18),
        );
        assert!(matches!(r, Err(PacketError::Checksum { .. })), "{r:?}");
    }

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    const MCAST: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);

    /// REFERENCE.md's captured v2 advert: VRID 51, priority 150, one
    /// address, auth PASS "s3cret", interval 1 s, checksum 0x00d1.
    fn captured_v2() -> Vec<u8> {
        let mut b = hex("21 33 96 01 01 01 00d1 0a7b0064");
        b.extend_from_slice(b"s3cret\0\0");
        b
    }

    /// REFERENCE.md's captured v3 advert: VRID 52, priority 100, 50 cs,
    /// 10.123.0.200, checksum 0x49e0. The checksum fits a unicast advert
    /// between 10.123.0.1 and 10.123.0.2 (the pseudo-header sum does not
    /// tell which way).
    fn captured_v3() -> Vec<u8> {
        hex("31 34 64 01 0032 49e0 0a7b00c8")
    }

    #[test]
    fn captured_v2_parses() {
        let a = Advert::parse(&captured_v2(), Ipv4Addr::new(10, 123, 0, 1), MCAST).unwrap();
        assert_eq!(a.version, Version::V2);
        assert_eq!(a.vrid, 51);
        assert_eq!(a.priority, 150);
        assert_eq!(a.interval, 1);
        assert_eq!(a.addresses, vec![IpAddr::from([10, 123, 0, 100])]);
        assert_eq!(a.auth_type, AUTH_PASS);
        assert_eq!(&a.auth_data, b"s3cret\0\0");
        assert_eq!(a.interval_duration(), Duration::from_secs(1));
    }

    #[test]
    fn captured_v2_rebuilds_byte_exact() {
        let a = Advert::v2(
            51,
            150,
            1,
            vec![Ipv4Addr::new(10, 123, 0, 100)],
            Some("s3cret"),
        );
        // v2 checksums ignore the IP addresses.
        assert_eq!(a.encode(Ipv4Addr::UNSPECIFIED, MCAST), captured_v2());
        assert_eq!(
            a.encode(Ipv4Addr::new(1, 2, 3, 4), Ipv4Addr::new(5, 6, 7, 8)),
            captured_v2()
        );
    }

    #[test]
    fn captured_v3_parses_and_rebuilds() {
        let s = Ipv4Addr::new(10, 123, 0, 1);
        let d = Ipv4Addr::new(10, 123, 0, 2);
        let a = Advert::parse(&captured_v3(), s, d).unwrap();
        assert_eq!(
            a,
            Advert::v3(52, 100, 50, vec![Ipv4Addr::new(10, 123, 0, 200)])
        );
        assert_eq!(a.interval_duration(), Duration::from_millis(500));
        assert_eq!(a.encode(s, d), captured_v3());
        // The other direction sums the same.
        assert!(Advert::parse(&captured_v3(), d, s).is_ok());
        // Sent to the multicast group instead, the checksum would differ.
        assert!(matches!(
            Advert::parse(&captured_v3(), s, MCAST),
            Err(PacketError::Checksum {
                carried: 0x49e0,
                ..
            })
        ));
    }

    #[test]
    fn v3_checksum_is_recomputed_per_destination() {
        let a = Advert::v3(7, 200, 100, vec![Ipv4Addr::new(198, 18, 0, 100)]);
        let s = Ipv4Addr::new(198, 18, 0, 1);
        let p1 = Ipv4Addr::new(198, 18, 0, 2);
        let p2 = Ipv4Addr::new(198, 18, 0, 3);
        let b1 = a.encode(s, p1);
        let b2 = a.encode(s, p2);
        assert_ne!(b1[6..8], b2[6..8]);
        assert_eq!(Advert::parse(&b1, s, p1).unwrap(), a);
        assert_eq!(Advert::parse(&b2, s, p2).unwrap(), a);
        assert!(Advert::parse(&b1, s, p2).is_err());
    }

    #[test]
    fn round_trips() {
        let addrs = vec![
            Ipv4Addr::new(198, 18, 0, 100),
            Ipv4Addr::new(198, 18, 0, 101),
            Ipv4Addr::new(198, 18, 0, 102),
        ];
        let s = Ipv4Addr::new(198, 18, 0, 1);
        for a in [
            Advert::v2(1, 100, 1, addrs.clone(), None),
            Advert::v2(255, 255, 3, addrs.clone(), Some("longer-than-8")),
            Advert::v2(9, 0, 1, vec![], None),
            Advert::v3(1, 100, 100, addrs.clone()),
            Advert::v3(200, 1, 4095, addrs.clone()),
        ] {
            let b = a.encode(s, MCAST);
            assert_eq!(b.len(), a.len());
            assert_eq!(Advert::parse(&b, s, MCAST).unwrap(), a);
            let ip = a.encode_ipv4(s, MCAST);
            assert_eq!(checksum::checksum(&ip[..20]), 0);
            let (rx, back) = Advert::parse_ipv4(&ip).unwrap();
            assert_eq!(back, a);
            assert_eq!(
                rx,
                RxInfo {
                    src: s.into(),
                    dst: MCAST.into(),
                    ttl: 255
                }
            );
        }
        // Password cut to 8 bytes.
        assert_eq!(pass_data("longer-than-8"), *b"longer-t");
        assert_eq!(pass_data("ab"), *b"ab\0\0\0\0\0\0");
    }

    #[test]
    fn rejects_malformed() {
        let s = Ipv4Addr::new(10, 123, 0, 1);
        let good = captured_v2();
        // Too short for the header.
        assert_eq!(
            Advert::parse(&good[..7], s, MCAST),
            Err(PacketError::TooShort { len: 7 })
        );
        // Count says 2 addresses but only one is there.
        let mut b = good.clone();
        b[3] = 2;
        assert_eq!(
            Advert::parse(&b, s, MCAST),
            Err(PacketError::Length {
                len: 20,
                expected: 24
            })
        );
        // Trailing garbage.
        let mut b = good.clone();
        b.push(0);
        assert!(matches!(
            Advert::parse(&b, s, MCAST),
            Err(PacketError::Length { .. })
        ));
        // Version 4 / type 2.
        let mut b = good.clone();
        b[0] = 0x41;
        assert_eq!(Advert::parse(&b, s, MCAST), Err(PacketError::Version(4)));
        let mut b = good.clone();
        b[0] = 0x22;
        assert_eq!(Advert::parse(&b, s, MCAST), Err(PacketError::Type(2)));
        // One flipped bit in the password breaks the checksum.
        let mut b = good.clone();
        b[13] ^= 1;
        let mut z = b.clone();
        z[6] = 0;
        z[7] = 0;
        assert_eq!(
            Advert::parse(&b, s, MCAST),
            Err(PacketError::Checksum {
                carried: 0x00d1,
                computed: checksum::checksum(&z),
            })
        );
        assert_ne!(checksum::checksum(&z), 0x00d1);
    }

    #[test]
    fn ip_level_checks() {
        let a = Advert::v2(1, 100, 1, vec![Ipv4Addr::new(198, 18, 0, 100)], None);
        let s = Ipv4Addr::new(198, 18, 0, 1);
        let ip = a.encode_ipv4(s, MCAST);
        let mut short = ip.clone();
        short.pop();
        assert!(matches!(
            Advert::parse_ipv4(&short),
            Err(PacketError::IpTotalLength { .. })
        ));
        let mut proto = ip.clone();
        proto[9] = 51;
        assert_eq!(Advert::parse_ipv4(&proto), Err(PacketError::Protocol(51)));
        let mut v6 = ip.clone();
        v6[0] = 0x65;
        assert_eq!(Advert::parse_ipv4(&v6), Err(PacketError::NotIpv4));
    }

    fn expect<'a>(vips: &'a [IpAddr]) -> Expect<'a> {
        Expect {
            version: Version::V2,
            auth_type: AUTH_PASS,
            auth_data: pass_data("s3cret"),
            interval: 1,
            vips,
            check_addresses: true,
            unicast: false,
            peers: &[],
        }
    }

    #[test]
    fn instance_checks_in_keepalived_order() {
        let vips = [IpAddr::from([10, 123, 0, 100])];
        let a = Advert::parse(&captured_v2(), Ipv4Addr::new(10, 123, 0, 1), MCAST).unwrap();
        let rx = RxInfo {
            src: Ipv4Addr::new(10, 123, 0, 1).into(),
            dst: MCAST.into(),
            ttl: 255,
        };
        assert_eq!(a.check(&rx, &expect(&vips)), Ok(()));

        // TTL 254 on multicast: KO.
        let rx254 = RxInfo { ttl: 254, ..rx };
        assert_eq!(
            a.check(&rx254, &expect(&vips)),
            Err(PacketError::Ttl { received: 254 })
        );
        // Unicast: the source must be a peer, with the peer's TTL range.
        let uni_rx = RxInfo {
            dst: Ipv4Addr::new(10, 123, 0, 2).into(),
            ttl: 255,
            ..rx
        };
        let peer = PeerCheck {
            addr: rx.src,
            min_ttl: 255,
            max_ttl: 255,
        };
        let peers = [peer];
        let uni = Expect {
            unicast: true,
            peers: &peers,
            ..expect(&vips)
        };
        assert_eq!(a.check(&uni_rx, &uni), Ok(()));
        let stranger = RxInfo {
            src: Ipv4Addr::new(10, 123, 0, 66).into(),
            ..uni_rx
        };
        let e = a.check(&stranger, &uni).unwrap_err();
        assert_eq!(e, PacketError::UnknownUnicastSource(stranger.src));
        assert_eq!(
            e.to_string(),
            "unicast source address 10.123.0.66 not a unicast peer"
        );
        let routed = RxInfo { ttl: 64, ..uni_rx };
        let e = a.check(&routed, &uni).unwrap_err();
        assert_eq!(
            e.to_string(),
            "TTL/HL 64 from 10.123.0.1 not in range [255, 255]"
        );
        let wide = [PeerCheck {
            min_ttl: 60,
            ..peer
        }];
        assert_eq!(
            a.check(
                &routed,
                &Expect {
                    peers: &wide,
                    ..uni
                }
            ),
            Ok(())
        );
        // A unicast instance refuses multicast adverts and vice versa.
        assert_eq!(
            a.check(&rx, &uni),
            Err(PacketError::UnexpectedCast { multicast: true })
        );
        assert_eq!(
            a.check(&RxInfo { ttl: 255, ..uni_rx }, &expect(&vips)),
            Err(PacketError::UnexpectedCast { multicast: false })
        );

        // Version mismatch.
        let v3 = Expect {
            version: Version::V3,
            auth_type: 0,
            ..expect(&vips)
        };
        assert_eq!(
            a.check(&rx, &v3),
            Err(PacketError::VersionMismatch {
                received: 2,
                ours: 3
            })
        );
        // Wrong password, no auth expected.
        let wrong = Expect {
            auth_data: pass_data("secret"),
            ..expect(&vips)
        };
        assert_eq!(a.check(&rx, &wrong), Err(PacketError::BadPassword));
        let none = Expect {
            auth_type: AUTH_NONE,
            ..expect(&vips)
        };
        assert_eq!(
            a.check(&rx, &none),
            Err(PacketError::AuthTypeMismatch {
                received: 1,
                ours: 0
            })
        );
        // v2 interval mismatch is a drop.
        let slow = Expect {
            interval: 2,
            ..expect(&vips)
        };
        let e = a.check(&rx, &slow).unwrap_err();
        assert!(e.is_drop());
        assert_eq!(
            e,
            PacketError::IntervalMismatch {
                received: 1,
                ours: 2
            }
        );
        // VIP list.
        let other = [IpAddr::from([10, 123, 0, 101])];
        assert_eq!(
            a.check(&rx, &expect(&other)),
            Err(PacketError::MissingVip(other[0]))
        );
        let two = [vips[0], other[0]];
        assert_eq!(
            a.check(&rx, &expect(&two)),
            Err(PacketError::AddressCount {
                received: 1,
                ours: 2
            })
        );
        // ... unless the address check is skipped.
        let skip = Expect {
            check_addresses: false,
            ..expect(&two)
        };
        assert_eq!(a.check(&rx, &skip), Ok(()));
    }

    #[test]
    fn v3_interval_not_checked() {
        let vips = [IpAddr::from([10, 123, 0, 200])];
        let s = Ipv4Addr::new(10, 123, 0, 1);
        let d = Ipv4Addr::new(10, 123, 0, 2);
        let a = Advert::parse(&captured_v3(), s, d).unwrap();
        let ex = Expect {
            version: Version::V3,
            auth_type: 0,
            auth_data: [0; 8],
            interval: 100,
            vips: &vips,
            check_addresses: true,
            unicast: true,
            peers: &[PeerCheck {
                addr: s.into(),
                min_ttl: 0,
                max_ttl: 255,
            }],
        };
        let rx = RxInfo {
            src: s.into(),
            dst: d.into(),
            ttl: 64,
        };
        assert_eq!(a.check(&rx, &ex), Ok(()));
    }

    // IPv6 (RFC 5798 §5.1.2, §5.2).

    const LL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
    const MCAST6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);
    const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0x100);

    /// The v3 checksum as RFC 8200 §8.1 lays the pseudo-header out, summed
    /// by etherparse (not by the dataplane's checksum module the codec
    /// uses): source, destination, the upper-layer length as 32 bits, three
    /// zero bytes, next header 112, then the message with a zero checksum.
    fn etherparse_v6_checksum(src: Ipv6Addr, dst: Ipv6Addr, msg: &[u8]) -> u16 {
        let mut zeroed = msg.to_vec();
        zeroed[6] = 0;
        zeroed[7] = 0;
        let mut s = etherparse::checksum::Sum16BitWords::new();
        s = s.add_16bytes(src.octets());
        s = s.add_16bytes(dst.octets());
        s = s.add_4bytes((msg.len() as u32).to_be_bytes());
        s = s.add_4bytes([0, 0, 0, IPPROTO_VRRP]);
        s.add_slice(&zeroed).ones_complement().to_be()
    }

    /// VRID 51, priority 150, 100 cs, one address 2001:2::100, from
    /// fe80::1 to ff02::12. The checksum 0x1945 was computed outside Rust
    /// (RFC 1071 sum in Python over the RFC 8200 pseudo-header).
    fn golden_v6() -> Vec<u8> {
        hex("31 33 96 01 0064 1945 20010002000000000000000000000100")
    }

    #[test]
    fn v6_advert_builds_byte_exact_with_the_ipv6_pseudo_header_checksum() {
        let a = Advert::v3(51, 150, 100, vec![VIP6]);
        let b = a.encode(LL, MCAST6);
        assert_eq!(b, golden_v6());
        assert_eq!(b.len(), 8 + 16);
        assert_eq!(a.len(), b.len());
        assert_eq!(
            u16::from_be_bytes([b[6], b[7]]),
            etherparse_v6_checksum(LL, MCAST6, &b)
        );
        // Unicast: the pseudo-header's destination is the peer.
        let (s, d): (Ipv6Addr, Ipv6Addr) =
            ("2001:2::1".parse().unwrap(), "2001:2::2".parse().unwrap());
        let u = a.encode(s, d);
        assert_eq!(u16::from_be_bytes([u[6], u[7]]), 0xd6d2);
        assert_eq!(
            u16::from_be_bytes([u[6], u[7]]),
            etherparse_v6_checksum(s, d, &u)
        );
    }

    #[test]
    fn v6_advert_parses_and_round_trips() {
        let a = Advert::parse(&golden_v6(), LL, MCAST6).unwrap();
        assert_eq!(a.version, Version::V3);
        assert_eq!((a.vrid, a.priority, a.interval), (51, 150, 100));
        assert_eq!(a.addresses, vec![IpAddr::V6(VIP6)]);
        let many: Vec<Ipv6Addr> = (1..=5)
            .map(|i| Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, i))
            .collect();
        let a = Advert::v3(200, 1, 4095, many);
        let b = a.encode(LL, MCAST6);
        assert_eq!(b.len(), 8 + 5 * 16);
        assert_eq!(Advert::parse(&b, LL, MCAST6).unwrap(), a);
    }

    #[test]
    fn v6_malformed_adverts_are_errors() {
        let good = golden_v6();
        // The checksum covers the pseudo-header: another source breaks it.
        let other = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2);
        assert!(matches!(
            Advert::parse(&good, other, MCAST6),
            Err(PacketError::Checksum {
                carried: 0x1945,
                ..
            })
        ));
        // A flipped address bit.
        let mut b = good.clone();
        b[23] ^= 1;
        assert!(matches!(
            Advert::parse(&b, LL, MCAST6),
            Err(PacketError::Checksum { .. })
        ));
        // Count 2 with one address: 16-byte addresses are counted.
        let mut b = good.clone();
        b[3] = 2;
        assert_eq!(
            Advert::parse(&b, LL, MCAST6),
            Err(PacketError::Length {
                len: 24,
                expected: 40
            })
        );
        // An IPv4-sized address list over IPv6.
        let v4ish =
            Advert::v3(51, 150, 100, vec![Ipv4Addr::new(198, 18, 0, 100)]).encode(LL, MCAST6);
        assert_eq!(
            Advert::parse(&v4ish, LL, MCAST6),
            Err(PacketError::Length {
                len: 12,
                expected: 24
            })
        );
        // Truncated, and VRRPv2 over IPv6.
        assert_eq!(
            Advert::parse(&good[..5], LL, MCAST6),
            Err(PacketError::TooShort { len: 5 })
        );
        let mut b = good.clone();
        b[0] = 0x21;
        assert_eq!(Advert::parse(&b, LL, MCAST6), Err(PacketError::V2OverIpv6));
        // Every prefix and every single-byte corruption is an error or an
        // advert, never a panic.
        for n in 0..good.len() {
            let _ = Advert::parse(&good[..n], LL, MCAST6);
        }
        for i in 0..good.len() {
            for x in [0x01, 0x80, 0xff] {
                let mut b = good.clone();
                b[i] ^= x;
                assert!(Advert::parse(&b, LL, MCAST6).is_err(), "byte {i} ^ {x:#x}");
            }
        }
    }

    #[test]
    fn v6_receive_checks() {
        let vips = [IpAddr::V6(VIP6)];
        let a = Advert::parse(&golden_v6(), LL, MCAST6).unwrap();
        let ex = Expect {
            version: Version::V3,
            auth_type: 0,
            auth_data: [0; 8],
            interval: 100,
            vips: &vips,
            check_addresses: true,
            unicast: false,
            peers: &[],
        };
        let rx = RxInfo {
            src: LL.into(),
            dst: MCAST6.into(),
            ttl: 255,
        };
        assert_eq!(a.check(&rx, &ex), Ok(()));
        // RFC 5798 §5.1.2.3 / §7.1: hop limit 255.
        assert_eq!(
            a.check(&RxInfo { ttl: 254, ..rx }, &ex),
            Err(PacketError::Ttl { received: 254 })
        );
        // RFC 5798 §5.1.2.1: multicast adverts come from link-local
        // addresses.
        let global: Ipv6Addr = "2001:2::66".parse().unwrap();
        let e = a
            .check(
                &RxInfo {
                    src: global.into(),
                    ..rx
                },
                &ex,
            )
            .unwrap_err();
        assert_eq!(e, PacketError::NotLinkLocal(global));
        assert_eq!(
            e.to_string(),
            "IPv6 source address 2001:2::66 is not link-local"
        );
        assert!(is_link_local(&"febf::1".parse().unwrap()));
        assert!(!is_link_local(&"fec0::1".parse().unwrap()));
        // Another VIP list, or count.
        let other = [IpAddr::V6("2001:2::101".parse().unwrap())];
        assert_eq!(
            a.check(&rx, &Expect { vips: &other, ..ex }),
            Err(PacketError::MissingVip(other[0]))
        );
        // Unicast: global addresses are fine, from a peer only, hop limit 255.
        let peer: Ipv6Addr = "2001:2::1".parse().unwrap();
        let me: Ipv6Addr = "2001:2::2".parse().unwrap();
        let peers = [PeerCheck {
            addr: peer.into(),
            min_ttl: 255,
            max_ttl: 255,
        }];
        let uni = Expect {
            unicast: true,
            peers: &peers,
            ..ex
        };
        let urx = RxInfo {
            src: peer.into(),
            dst: me.into(),
            ttl: 255,
        };
        assert_eq!(a.check(&urx, &uni), Ok(()));
        assert_eq!(
            a.check(
                &RxInfo {
                    src: global.into(),
                    ..urx
                },
                &uni
            ),
            Err(PacketError::UnknownUnicastSource(global.into()))
        );
        assert!(matches!(
            a.check(&RxInfo { ttl: 64, ..urx }, &uni),
            Err(PacketError::TtlRange { received: 64, .. })
        ));
        assert_eq!(
            a.check(&rx, &uni),
            Err(PacketError::UnexpectedCast { multicast: true })
        );
    }
}
