//! ICMP errors that quote a load-balanced packet are translated like the
//! flow they belong to (IPVS `ip_vs_in_icmp` / `ip_vs_out_icmp`): the outer
//! addresses, the quoted header's addresses and ports, the quoted IP
//! checksum and the ICMP checksum are rewritten. The quoted transport
//! checksum is left alone, as IPVS leaves it (only 8 bytes are quoted).

use crate::wire::{icmp, ipv4, l4};

/// The packet an ICMP error quotes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quoted {
    /// Offset of the ICMP header in the frame.
    pub icmp: usize,
    /// Offset of the quoted IP header in the frame.
    pub l3: usize,
    pub ihl: usize,
    pub proto: u8,
    pub src: [u8; 4],
    pub dst: [u8; 4],
    pub sport: u16,
    pub dport: u16,
}

/// Parses an ICMP error at `icmp_off` that ends at `end`. None when it is
/// not an error, or quotes too little to name a TCP/UDP flow.
pub fn parse_error(frame: &[u8], icmp_off: usize, end: usize) -> Option<Quoted> {
    let m = frame.get(icmp_off..end)?;
    if m.len() < icmp::HEADER_LEN + ipv4::MIN_HEADER_LEN + 8 || !icmp::is_error(m[0]) {
        return None;
    }
    let q = &m[icmp::HEADER_LEN..];
    if q[0] >> 4 != 4 {
        return None;
    }
    let ihl = (q[0] & 0x0f) as usize * 4;
    if ihl < ipv4::MIN_HEADER_LEN || q.len() < ihl + 8 {
        return None;
    }
    let proto = q[9];
    if proto != ipv4::PROTO_TCP && proto != ipv4::PROTO_UDP {
        return None;
    }
    Some(Quoted {
        icmp: icmp_off,
        l3: icmp_off + icmp::HEADER_LEN,
        ihl,
        proto,
        src: q[12..16].try_into().unwrap(),
        dst: q[16..20].try_into().unwrap(),
        sport: l4::src_port(&q[ihl..]),
        dport: l4::dst_port(&q[ihl..]),
    })
}

/// New values for an ICMP error's outer and quoted addresses.
#[derive(Clone, Copy, Debug, Default)]
pub struct Rewrite {
    pub outer_src: Option<[u8; 4]>,
    pub outer_dst: Option<[u8; 4]>,
    pub quoted_src: Option<([u8; 4], u16)>,
    pub quoted_dst: Option<([u8; 4], u16)>,
}

/// Applies `r` to the error at `q` inside the IP packet at `l3` ending at
/// `end`.
pub fn translate(frame: &mut [u8], l3: usize, end: usize, q: &Quoted, r: &Rewrite) {
    if let Some(a) = r.outer_src {
        ipv4::set_src(&mut frame[l3..], a);
    }
    if let Some(a) = r.outer_dst {
        ipv4::set_dst(&mut frame[l3..], a);
    }
    let ql = q.l3;
    if let Some((a, p)) = r.quoted_src {
        frame[ql + 12..ql + 16].copy_from_slice(&a);
        l4::set_src_port_raw(&mut frame[ql + q.ihl..], p);
    }
    if let Some((a, p)) = r.quoted_dst {
        frame[ql + 16..ql + 20].copy_from_slice(&a);
        l4::set_dst_port_raw(&mut frame[ql + q.ihl..], p);
    }
    ipv4::fill_checksum(&mut frame[ql..ql + q.ihl]);
    icmp::fill_checksum(&mut frame[q.icmp..end]);
}
