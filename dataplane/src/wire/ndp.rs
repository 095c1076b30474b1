//! Neighbour Discovery for IPv6 on Ethernet (RFC 4861): the solicitations
//! and advertisements a director answers, sends to resolve next hops, and
//! sends unsolicited when it takes over addresses (IPv6's gratuitous ARP).

use super::ethernet::{self, Mac, ETHERTYPE_IPV6};
use super::icmpv6::{self, TYPE_NEIGHBOR_ADVERT, TYPE_NEIGHBOR_SOLICIT};
use super::ipv6::{self, Ipv6Info};

/// ICMPv6 header, reserved or flags word, and the target address.
pub const MIN_LEN: usize = 24;
pub const OPT_SOURCE_LL: u8 = 1;
pub const OPT_TARGET_LL: u8 = 2;
/// An Ethernet link-layer address option: type, length 1 (8 bytes), MAC.
pub const LL_OPT_LEN: usize = 8;
pub const FLAG_ROUTER: u8 = 0x80;
pub const FLAG_SOLICITED: u8 = 0x40;
pub const FLAG_OVERRIDE: u8 = 0x20;
/// Every message is sent, and must arrive, with hop limit 255: proof that it
/// did not cross a router (RFC 4861 §7.1).
pub const HOP_LIMIT: u8 = 255;
/// Length of a whole frame built here (without VLAN tag): Ethernet, IPv6,
/// the message and one link-layer option.
pub const FRAME_LEN: usize = ethernet::HEADER_LEN + ipv6::HEADER_LEN + MIN_LEN + LL_OPT_LEN;

/// Why a Neighbour Discovery message was not valid (RFC 4861 §7.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NdpError {
    /// Not a solicitation or advertisement.
    NotNdp,
    /// Hop limit below 255: it came through a router.
    BadHopLimit,
    BadCode,
    Truncated,
    BadChecksum,
    MulticastTarget,
    /// An option of length 0, or one that runs past the message.
    BadOption,
    /// Duplicate address detection (source `::`) to an address that is not
    /// a solicited-node group, or with a source link-layer option.
    BadDad,
    /// A solicited advertisement sent to a multicast group.
    SolicitedToMulticast,
}

/// A neighbour solicitation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Solicit {
    pub target: [u8; 16],
    pub source_ll: Option<Mac>,
}

/// A neighbour advertisement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Advert {
    /// The R, S and O flags.
    pub flags: u8,
    pub target: [u8; 16],
    pub target_ll: Option<Mac>,
}

/// Checks what RFC 4861 §7.1.1 and §7.1.2 ask of both messages, and finds
/// the link-layer option of type `want`.
fn validate<'a>(p: &'a [u8], info: &Ipv6Info, ty: u8, want: u8) -> Result<Checked<'a>, NdpError> {
    if info.proto != ipv6::NH_ICMPV6 || info.is_fragment() {
        return Err(NdpError::NotNdp);
    }
    let m = &p[info.l4_offset..info.total_len];
    if m.first() != Some(&ty) {
        return Err(NdpError::NotNdp);
    }
    if info.hop_limit != HOP_LIMIT {
        return Err(NdpError::BadHopLimit);
    }
    if m.len() < MIN_LEN {
        return Err(NdpError::Truncated);
    }
    if m[1] != 0 {
        return Err(NdpError::BadCode);
    }
    if !icmpv6::checksum_ok(m, &info.src, &info.dst) {
        return Err(NdpError::BadChecksum);
    }
    let target: [u8; 16] = m[8..24].try_into().unwrap();
    if ipv6::is_multicast(&target) {
        return Err(NdpError::MulticastTarget);
    }
    let mut ll = None;
    let mut opts = &m[MIN_LEN..];
    while !opts.is_empty() {
        if opts.len() < 2 {
            return Err(NdpError::BadOption);
        }
        let len = opts[1] as usize * 8;
        if len == 0 || len > opts.len() {
            return Err(NdpError::BadOption);
        }
        if opts[0] == want && len == LL_OPT_LEN {
            ll = Some(opts[2..8].try_into().unwrap());
        }
        opts = &opts[len..];
    }
    Ok(Checked { msg: m, target, ll })
}

/// What [`validate`] found: the message, its target, and the link-layer
/// option asked for.
struct Checked<'a> {
    msg: &'a [u8],
    target: [u8; 16],
    ll: Option<Mac>,
}

impl Solicit {
    /// Parses and validates the solicitation in the IPv6 packet `p`.
    pub fn parse(p: &[u8], info: &Ipv6Info) -> Result<Solicit, NdpError> {
        let Checked {
            target,
            ll: source_ll,
            ..
        } = validate(p, info, TYPE_NEIGHBOR_SOLICIT, OPT_SOURCE_LL)?;
        if ipv6::is_unspecified(&info.src)
            && (info.dst != ipv6::solicited_node(&target) || source_ll.is_some())
        {
            return Err(NdpError::BadDad);
        }
        Ok(Solicit { target, source_ll })
    }

    /// Duplicate address detection by a node that has no address yet.
    pub fn is_dad(info: &Ipv6Info) -> bool {
        ipv6::is_unspecified(&info.src)
    }
}

impl Advert {
    /// Parses and validates the advertisement in the IPv6 packet `p`.
    pub fn parse(p: &[u8], info: &Ipv6Info) -> Result<Advert, NdpError> {
        let Checked {
            msg,
            target,
            ll: target_ll,
        } = validate(p, info, TYPE_NEIGHBOR_ADVERT, OPT_TARGET_LL)?;
        let flags = msg[4] & (FLAG_ROUTER | FLAG_SOLICITED | FLAG_OVERRIDE);
        if ipv6::is_multicast(&info.dst) && flags & FLAG_SOLICITED != 0 {
            return Err(NdpError::SolicitedToMulticast);
        }
        Ok(Advert {
            flags,
            target,
            target_ll,
        })
    }
}

/// Writes a whole frame carrying one message of type `ty` with `flags`,
/// `target` and a link-layer option of type `opt` holding `mac`. Returns its
/// length.
#[allow(clippy::too_many_arguments)]
fn build(
    buf: &mut [u8],
    eth_dst: &Mac,
    mac: &Mac,
    vlan: Option<u16>,
    src: [u8; 16],
    dst: [u8; 16],
    ty: u8,
    flags: u8,
    target: [u8; 16],
    opt: u8,
) -> usize {
    let l3 = ethernet::write_header(buf, eth_dst, mac, vlan, ETHERTYPE_IPV6);
    let len = MIN_LEN + LL_OPT_LEN;
    ipv6::write_header(
        &mut buf[l3..],
        len as u16,
        ipv6::NH_ICMPV6,
        HOP_LIMIT,
        src,
        dst,
    );
    let m = &mut buf[l3 + ipv6::HEADER_LEN..l3 + ipv6::HEADER_LEN + len];
    m.fill(0);
    m[0] = ty;
    m[4] = flags;
    m[8..24].copy_from_slice(&target);
    m[24] = opt;
    m[25] = 1;
    m[26..32].copy_from_slice(mac);
    icmpv6::fill_checksum(m, &src, &dst);
    l3 + ipv6::HEADER_LEN + len
}

/// The answer to a solicitation for our `target` from (`req_mac`, `req_src`):
/// solicited and override set, to the solicitor; to all nodes when it was
/// duplicate address detection (RFC 4861 §7.2.4).
pub fn build_reply(
    buf: &mut [u8],
    req_mac: &Mac,
    req_src: [u8; 16],
    mac: &Mac,
    vlan: Option<u16>,
    target: [u8; 16],
) -> usize {
    if ipv6::is_unspecified(&req_src) {
        let all = ipv6::ALL_NODES;
        return build(
            buf,
            &ipv6::multicast_mac(&all),
            mac,
            vlan,
            target,
            all,
            TYPE_NEIGHBOR_ADVERT,
            FLAG_OVERRIDE,
            target,
            OPT_TARGET_LL,
        );
    }
    build(
        buf,
        req_mac,
        mac,
        vlan,
        target,
        req_src,
        TYPE_NEIGHBOR_ADVERT,
        FLAG_SOLICITED | FLAG_OVERRIDE,
        target,
        OPT_TARGET_LL,
    )
}

/// An unsolicited advertisement of `addr` at `mac` to all nodes, with the
/// override flag so that caches take it (RFC 4861 §7.2.6): what a new VRRP
/// master sends for its IPv6 addresses, as keepalived does.
pub fn build_unsolicited(buf: &mut [u8], mac: &Mac, vlan: Option<u16>, addr: [u8; 16]) -> usize {
    let all = ipv6::ALL_NODES;
    build(
        buf,
        &ipv6::multicast_mac(&all),
        mac,
        vlan,
        addr,
        all,
        TYPE_NEIGHBOR_ADVERT,
        FLAG_OVERRIDE,
        addr,
        OPT_TARGET_LL,
    )
}

/// A solicitation from `src` asking who has `target`, to its solicited-node
/// group (RFC 4861 §7.2.2).
pub fn build_solicit(
    buf: &mut [u8],
    mac: &Mac,
    vlan: Option<u16>,
    src: [u8; 16],
    target: [u8; 16],
) -> usize {
    let group = ipv6::solicited_node(&target);
    build(
        buf,
        &ipv6::multicast_mac(&group),
        mac,
        vlan,
        src,
        group,
        TYPE_NEIGHBOR_SOLICIT,
        0,
        target,
        OPT_SOURCE_LL,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{Icmpv6Type, NetSlice, SlicedPacket, TransportSlice};

    const MAC: Mac = [2, 0, 0, 0, 0, 1];
    const PEER: Mac = [2, 0, 0, 0, 0, 2];
    const OURS: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x64];
    const THEIRS: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

    fn ip(f: &[u8]) -> (&[u8], Ipv6Info) {
        let p = &f[14..];
        (p, ipv6::parse(p).unwrap())
    }

    /// etherparse parses the frame and finds the ICMPv6 checksum right.
    fn etherparse_type(f: &[u8]) -> Icmpv6Type {
        let s = SlicedPacket::from_ethernet(f).unwrap();
        let Some(NetSlice::Ipv6(v6)) = &s.net else {
            panic!("not IPv6")
        };
        assert_eq!(v6.header().hop_limit(), 255);
        let Some(TransportSlice::Icmpv6(m)) = &s.transport else {
            panic!("not ICMPv6")
        };
        let h = v6.header();
        let calc = m
            .header()
            .icmp_type
            .calc_checksum(h.source(), h.destination(), m.payload())
            .unwrap();
        assert_eq!(calc, m.checksum(), "ICMPv6 checksum");
        m.icmp_type()
    }

    #[test]
    fn solicit_and_reply_round_trip() {
        let mut b = [0u8; 128];
        let n = build_solicit(&mut b, &PEER, None, THEIRS, OURS);
        assert_eq!(n, FRAME_LEN);
        assert_eq!(&b[0..6], &[0x33, 0x33, 0xff, 0, 0, 0x64]);
        assert_eq!(etherparse_type(&b[..n]), Icmpv6Type::NeighborSolicitation);
        let (p, info) = ip(&b[..n]);
        let s = Solicit::parse(p, &info).unwrap();
        assert_eq!(
            s,
            Solicit {
                target: OURS,
                source_ll: Some(PEER)
            }
        );

        let mut r = [0u8; 128];
        let n = build_reply(&mut r, &PEER, THEIRS, &MAC, Some(7), OURS);
        assert_eq!(n, FRAME_LEN + 4);
        assert_eq!(&r[0..6], &PEER);
        let Icmpv6Type::NeighborAdvertisement(h) = etherparse_type(&r[..n]) else {
            panic!("not an advertisement")
        };
        assert!(h.solicited && h.r#override && !h.router);
        let p = &r[18..n];
        let info = ipv6::parse(p).unwrap();
        assert_eq!((info.src, info.dst), (OURS, THEIRS));
        let a = Advert::parse(p, &info).unwrap();
        assert_eq!(
            a,
            Advert {
                flags: FLAG_SOLICITED | FLAG_OVERRIDE,
                target: OURS,
                target_ll: Some(MAC)
            }
        );
    }

    #[test]
    fn unsolicited_advert_bytes() {
        let mut b = [0u8; 128];
        let n = build_unsolicited(&mut b, &MAC, None, OURS);
        let want_head: [u8; 14] = [0x33, 0x33, 0, 0, 0, 1, 2, 0, 0, 0, 0, 1, 0x86, 0xdd];
        assert_eq!(b[..14], want_head);
        // Flags: override only; target and its link-layer option.
        assert_eq!(&b[54..56], &[136, 0]);
        assert_eq!(&b[58..62], &[FLAG_OVERRIDE, 0, 0, 0]);
        assert_eq!(&b[62..78], &OURS);
        assert_eq!(&b[78..86], &[2, 1, 2, 0, 0, 0, 0, 1]);
        etherparse_type(&b[..n]);
        let (p, info) = ip(&b[..n]);
        assert_eq!(Advert::parse(p, &info).unwrap().flags, FLAG_OVERRIDE);
    }

    #[test]
    fn dad_is_answered_to_all_nodes() {
        let mut b = [0u8; 128];
        let n = build_solicit(&mut b, &PEER, None, [0; 16], OURS);
        // DAD carries no source link-layer option: drop it (length 0 here
        // would be invalid, so shorten the message instead).
        let (p, info) = ip(&b[..n]);
        assert_eq!(Solicit::parse(p, &info), Err(NdpError::BadDad));
        let mut f = b[..n - LL_OPT_LEN].to_vec();
        f[18..20].copy_from_slice(&(MIN_LEN as u16).to_be_bytes());
        let src = [0u8; 16];
        let dst = ipv6::solicited_node(&OURS);
        icmpv6::fill_checksum(&mut f[54..], &src, &dst);
        let (p, info) = ip(&f);
        assert!(Solicit::is_dad(&info));
        assert_eq!(Solicit::parse(p, &info).unwrap().source_ll, None);
        let mut r = [0u8; 128];
        let n = build_reply(&mut r, &PEER, [0; 16], &MAC, None, OURS);
        let (p, info) = ip(&r[..n]);
        assert_eq!(info.dst, ipv6::ALL_NODES);
        assert_eq!(Advert::parse(p, &info).unwrap().flags, FLAG_OVERRIDE);
    }

    #[test]
    fn rejects_what_rfc_4861_rejects() {
        let mut b = [0u8; 128];
        let n = build_solicit(&mut b, &PEER, None, THEIRS, OURS);
        let good = b[..n].to_vec();
        let check = |f: &[u8]| {
            let (p, info) = ip(f);
            Solicit::parse(p, &info)
        };
        let mut f = good.clone();
        f[21] = 254;
        assert_eq!(check(&f), Err(NdpError::BadHopLimit));
        let mut f = good.clone();
        f[55] = 1;
        assert_eq!(check(&f), Err(NdpError::BadCode));
        let mut f = good.clone();
        f[60] ^= 1;
        assert_eq!(check(&f), Err(NdpError::BadChecksum));
        let mut f = good.clone();
        f[79] = 0; // option length 0
        let (src, dst) = (THEIRS, ipv6::solicited_node(&OURS));
        icmpv6::fill_checksum(&mut f[54..], &src, &dst);
        assert_eq!(check(&f), Err(NdpError::BadOption));
        let mut f = good.clone();
        f[62] = 0xff; // multicast target
        icmpv6::fill_checksum(&mut f[54..], &src, &dst);
        assert_eq!(check(&f), Err(NdpError::MulticastTarget));
        // A solicited advertisement to a group.
        let mut a = [0u8; 128];
        let n = build_unsolicited(&mut a, &MAC, None, OURS);
        a[58] |= FLAG_SOLICITED;
        icmpv6::fill_checksum(&mut a[54..n], &OURS, &ipv6::ALL_NODES);
        let (p, info) = ip(&a[..n]);
        assert_eq!(Advert::parse(p, &info), Err(NdpError::SolicitedToMulticast));
        // A solicitation is not an advertisement.
        let (p, info) = ip(&good);
        assert_eq!(Advert::parse(p, &info), Err(NdpError::NotNdp));
    }
}
