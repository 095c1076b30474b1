//! ARP for Ethernet and IPv4 (RFC 826), and gratuitous ARP (RFC 5227 §3).

use super::ethernet::{self, Mac, BROADCAST, ETHERTYPE_ARP, ETHERTYPE_IPV4};
use std::net::Ipv4Addr;

pub const LEN: usize = 28;
pub const OP_REQUEST: u16 = 1;
pub const OP_REPLY: u16 = 2;

/// A parsed Ethernet/IPv4 ARP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arp {
    pub op: u16,
    pub sha: Mac,
    pub spa: Ipv4Addr,
    pub tha: Mac,
    pub tpa: Ipv4Addr,
}

/// Why an ARP packet was not usable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArpError {
    Truncated,
    /// Not Ethernet hardware / IPv4 protocol addresses.
    Unsupported,
}

impl Arp {
    pub fn parse(p: &[u8]) -> Result<Arp, ArpError> {
        if p.len() < LEN {
            return Err(ArpError::Truncated);
        }
        let htype = u16::from_be_bytes([p[0], p[1]]);
        let ptype = u16::from_be_bytes([p[2], p[3]]);
        if htype != 1 || ptype != ETHERTYPE_IPV4 || p[4] != 6 || p[5] != 4 {
            return Err(ArpError::Unsupported);
        }
        Ok(Arp {
            op: u16::from_be_bytes([p[6], p[7]]),
            sha: p[8..14].try_into().unwrap(),
            spa: Ipv4Addr::new(p[14], p[15], p[16], p[17]),
            tha: p[18..24].try_into().unwrap(),
            tpa: Ipv4Addr::new(p[24], p[25], p[26], p[27]),
        })
    }

    pub fn write(&self, p: &mut [u8]) {
        p[0..2].copy_from_slice(&1u16.to_be_bytes());
        p[2..4].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        p[4] = 6;
        p[5] = 4;
        p[6..8].copy_from_slice(&self.op.to_be_bytes());
        p[8..14].copy_from_slice(&self.sha);
        p[14..18].copy_from_slice(&self.spa.octets());
        p[18..24].copy_from_slice(&self.tha);
        p[24..28].copy_from_slice(&self.tpa.octets());
    }

    /// A gratuitous ARP is a request or reply whose sender and target
    /// protocol addresses are equal.
    pub fn is_gratuitous(&self) -> bool {
        self.spa == self.tpa
    }
}

/// Minimum Ethernet payload is 46 bytes; ARP frames are padded to 60.
pub const MIN_FRAME: usize = 60;

/// Builds a complete ARP frame into `buf`, padded to the Ethernet minimum;
/// returns its length. `buf` must hold at least 64 bytes.
pub fn build_frame(
    buf: &mut [u8],
    eth_dst: &Mac,
    eth_src: &Mac,
    vlan: Option<u16>,
    arp: &Arp,
) -> usize {
    let l3 = ethernet::write_header(buf, eth_dst, eth_src, vlan, ETHERTYPE_ARP);
    arp.write(&mut buf[l3..]);
    let end = l3 + LEN;
    let total = end.max(MIN_FRAME);
    buf[end..total].fill(0);
    total
}

/// A reply to `req` saying that `mac` owns `req.tpa`.
pub fn build_reply(buf: &mut [u8], req: &Arp, mac: &Mac, vlan: Option<u16>) -> usize {
    let rep = Arp {
        op: OP_REPLY,
        sha: *mac,
        spa: req.tpa,
        tha: req.sha,
        tpa: req.spa,
    };
    build_frame(buf, &req.sha, mac, vlan, &rep)
}

/// A gratuitous ARP announcing `ip` at `mac`: an RFC 5227 ARP Announcement,
/// a broadcast request with sender = target = `ip` and a zero target MAC.
pub fn build_gratuitous(buf: &mut [u8], mac: &Mac, ip: Ipv4Addr, vlan: Option<u16>) -> usize {
    let g = Arp {
        op: OP_REQUEST,
        sha: *mac,
        spa: ip,
        tha: [0; 6],
        tpa: ip,
    };
    build_frame(buf, &BROADCAST, mac, vlan, &g)
}

/// A request asking who has `target`.
pub fn build_request(
    buf: &mut [u8],
    mac: &Mac,
    sender: Ipv4Addr,
    target: Ipv4Addr,
    vlan: Option<u16>,
) -> usize {
    let r = Arp {
        op: OP_REQUEST,
        sha: *mac,
        spa: sender,
        tha: [0; 6],
        tpa: target,
    };
    build_frame(buf, &BROADCAST, mac, vlan, &r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gratuitous_frame_bytes() {
        let mut b = [0u8; 64];
        let n = build_gratuitous(
            &mut b,
            &[2, 0, 0, 0, 0, 1],
            Ipv4Addr::new(198, 18, 0, 100),
            None,
        );
        assert_eq!(n, 60);
        let expect: [u8; 42] = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x08, 0x06, // eth
            0, 1, 8, 0, 6, 4, 0, 1, // htype ptype hlen plen op=request
            2, 0, 0, 0, 0, 1, 198, 18, 0, 100, // sender
            0, 0, 0, 0, 0, 0, 198, 18, 0, 100, // target
        ];
        assert_eq!(&b[..42], &expect);
        assert!(b[42..60].iter().all(|&x| x == 0));
        let a = Arp::parse(&b[14..]).unwrap();
        assert!(a.is_gratuitous());
    }

    #[test]
    fn reply_swaps() {
        let req = Arp {
            op: OP_REQUEST,
            sha: [2, 0, 0, 0, 0, 9],
            spa: Ipv4Addr::new(198, 18, 0, 2),
            tha: [0; 6],
            tpa: Ipv4Addr::new(198, 18, 0, 100),
        };
        let mut b = [0u8; 64];
        build_reply(&mut b, &req, &[2, 0, 0, 0, 0, 1], None);
        let r = Arp::parse(&b[14..]).unwrap();
        assert_eq!(r.op, OP_REPLY);
        assert_eq!(r.spa, req.tpa);
        assert_eq!(r.tpa, req.spa);
        assert_eq!(r.tha, req.sha);
        assert_eq!(&b[0..6], &req.sha);
        assert_eq!(Arp::parse(&b[14..20]), Err(ArpError::Truncated));
    }
}
