//! The IPVS sync message (`net/netfilter/ipvs/ip_vs_sync.c`), version 1:
//! an 8-byte header (a zero byte where version 0 had its count, so that old
//! receivers drop it; the sync id; the size; the count; the version; two
//! spare bytes), then one entry per connection, each padded to 4 bytes: type
//! (bit 0: IPv6), protocol, a version nibble and a 12-bit size, flags,
//! state, the three ports, fwmark, timeout in seconds, the three addresses,
//! then options as type-length-value (sequence adjustments, persistence
//! engine data and name). Options whose type has bit 6 set
//! ([`OPT_F_PARAM`]) are optional: a receiver that does not know them skips
//! them. ferrovs puts the FULLNAT local address and port in one such option
//! ([`OPT_FULLNAT`]), which the kernel ignores and which carries what a
//! backup needs to forward a FULLNAT flow after failover.
//!
//! IPv6 entries (type bit 0, `STYPE_F_INET6`) are the kernel's `struct
//! ip_vs_sync_v6`: the same 24 bytes, then three 16-byte addresses. IPVS
//! has no wire form for a connection of mixed families (its own
//! `ip_vs_proc_conn` assumes "svc_af is the same as the dest_af"): ferrovs
//! sends NAT64's and TUN's IPv4 real server behind an IPv6 VIP as an IPv6
//! entry whose daddr is the IPv4-mapped `::ffff:a.b.c.d`, followed by the
//! mandatory option [`OPT_DADDR4`] with the IPv4 address. A kernel backup
//! skips such an entry alone ("Unknown mandatory param", the rest of the
//! message is used) rather than install a connection to an address it
//! cannot reach; ferrovs reads the IPv4 server from it.
//!
//! A SYN-proxied connection carries its translation in IPVS's own
//! `IPVS_OPT_SEQ_DATA` (`struct ip_vs_sync_conn_options`: `in_seq` then
//! `out_seq`, each `init_seq`, `delta`, `previous_delta`) with
//! `IP_VS_CONN_F_OUT_SEQ`: the server's sequence numbers reach the client
//! shifted by `out_seq.delta` (`cookie - rs_isn`), whatever their value
//! (`init_seq` 0, `previous_delta` = `delta`, as `vs_fix_seq` reads it),
//! and the client's acknowledgements go back by the same delta. The
//! server's window scale, which IPVS has no field for, rides in the
//! optional [`OPT_SYNPROXY`]; a kernel backup keeps the sequence data but
//! applies it only through an application helper, so a SYN-proxied flow
//! fails over only to a ferrovs backup.
//!
//! Sans-IO: [`Encoder`] fills one datagram at a time, [`decode`] reads one.
//! Receiving follows the kernel's checks: a message whose size field is not
//! its length, or whose entries run past it, is dropped whole; an entry with
//! an unknown mandatory option, an unknown protocol or an invalid state is
//! skipped alone.

use std::net::IpAddr;
use thiserror::Error;

/// The default multicast group and port (`IP_VS_SYNC_GROUP`,
/// `IP_VS_SYNC_PORT`).
pub const DEFAULT_GROUP: std::net::Ipv4Addr = std::net::Ipv4Addr::new(224, 0, 0, 81);
pub const DEFAULT_PORT: u16 = 8848;
pub const VERSION: u8 = 1;
pub const HEADER_LEN: usize = 8;
const V0_HEADER_LEN: usize = 4;
/// Fixed part of an entry: 36 bytes for IPv4, 72 for IPv6.
pub const ENTRY_V4_LEN: usize = 24 + 3 * 4;
pub const ENTRY_V6_LEN: usize = 24 + 3 * 16;
const V0_ENTRY_LEN: usize = 24;
const SEQ_OPT_LEN: usize = 24;

pub const OPT_SEQ_DATA: u8 = 1;
pub const OPT_PE_DATA: u8 = 2;
pub const OPT_PE_NAME: u8 = 3;
/// Set in an option's type: the option may be skipped by a receiver that
/// does not know it.
pub const OPT_F_PARAM: u8 = 1 << 6;
/// ferrovs's optional option: the FULLNAT local address and port (6 bytes
/// for IPv4, 18 for IPv6).
pub const OPT_FULLNAT: u8 = OPT_F_PARAM | 8;
/// ferrovs's mandatory option of an IPv6 entry whose real server is IPv4
/// (NAT64, TUN): the server's IPv4 address (4 bytes). Mandatory so that a
/// kernel backup skips the entry.
pub const OPT_DADDR4: u8 = 9;
/// ferrovs's optional option of a SYN-proxied connection: the server's
/// window scale (1 byte, 15 when windows are not rescaled).
pub const OPT_SYNPROXY: u8 = OPT_F_PARAM | 10;
/// `IP_VS_PEDATA_MAXLEN` and `IP_VS_PENAME_MAXLEN`.
const PE_DATA_MAX: usize = 255;
const PE_NAME_MAX: usize = 16;

/// Connection flags (`IP_VS_CONN_F_*`, include/uapi/linux/ip_vs.h).
pub mod flags {
    pub const FWD_MASK: u32 = 0x0007;
    pub const MASQ: u32 = 0x0000;
    pub const TUNNEL: u32 = 0x0002;
    pub const DROUTE: u32 = 0x0003;
    /// Not in IPVS: DPVS's code for FULLNAT in the forwarding bits.
    pub const FULLNAT: u32 = 0x0005;
    pub const SYNC: u32 = 0x0020;
    pub const HASHED: u32 = 0x0040;
    pub const NOOUTPUT: u32 = 0x0080;
    pub const INACTIVE: u32 = 0x0100;
    pub const OUT_SEQ: u32 = 0x0200;
    pub const IN_SEQ: u32 = 0x0400;
    pub const SEQ_MASK: u32 = 0x0600;
    pub const NO_CPORT: u32 = 0x0800;
    pub const TEMPLATE: u32 = 0x1000;
    pub const ONE_PACKET: u32 = 0x2000;
    /// What a backup takes from a message (`IP_VS_CONN_F_BACKUP_MASK`).
    pub const BACKUP_MASK: u32 = FWD_MASK | NOOUTPUT | INACTIVE | SEQ_MASK | NO_CPORT | TEMPLATE;
}

/// TCP states as IPVS numbers them (`IP_VS_TCP_S_*`): the state field of a
/// TCP entry is below this.
pub const TCP_STATES: u16 = 11;
/// UDP has one state (`IP_VS_UDP_S_NORMAL`).
pub const UDP_STATES: u16 = 1;

/// One side of a sequence-number adjustment (`struct ip_vs_seq`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Seq {
    pub init_seq: u32,
    pub delta: u32,
    pub previous_delta: u32,
}

/// A synchronised connection or persistence template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncConn {
    pub protocol: u8,
    /// `IP_VS_CONN_F_*` as sent (the receiver masks them).
    pub flags: u32,
    pub state: u16,
    pub caddr: IpAddr,
    pub cport: u16,
    pub vaddr: IpAddr,
    pub vport: u16,
    pub daddr: IpAddr,
    pub dport: u16,
    pub fwmark: u32,
    /// Seconds; 0 in version 0 messages (the receiver uses its own).
    pub timeout_s: u32,
    /// Incoming and outgoing sequence adjustments.
    pub seq: Option<(Seq, Seq)>,
    /// Persistence engine data and name (IPVS's SIP engine); carried, not
    /// interpreted.
    pub pe: Option<(Vec<u8>, String)>,
    /// The FULLNAT local address and port.
    pub fullnat: Option<(IpAddr, u16)>,
    /// A SYN-proxied connection's server window scale ([`OPT_SYNPROXY`]).
    pub synproxy_ws: Option<u8>,
}

impl SyncConn {
    pub fn is_template(&self) -> bool {
        self.flags & flags::TEMPLATE != 0
    }
    fn is_v6(&self) -> bool {
        self.caddr.is_ipv6()
    }
    /// The entry's length on the wire, before padding.
    pub fn wire_len(&self) -> usize {
        let mut n = if self.is_v6() {
            ENTRY_V6_LEN
        } else {
            ENTRY_V4_LEN
        };
        if self.seq.is_some() {
            n += 2 + SEQ_OPT_LEN;
        }
        if let Some((data, name)) = &self.pe {
            n += 2 + data.len() + if name.is_empty() { 0 } else { 2 + name.len() };
        }
        if let Some((a, _)) = self.fullnat {
            n += 2 + if a.is_ipv6() { 18 } else { 6 };
        }
        if self.is_v6() && self.daddr.is_ipv4() {
            n += 2 + 4;
        }
        if self.synproxy_ws.is_some() {
            n += 2 + 1;
        }
        n
    }
    /// Whether the families are ones the wire can carry: all IPv4, all
    /// IPv6, or an IPv6 client and VIP with an IPv4 real server.
    fn families_ok(&self) -> bool {
        let v6 = self.is_v6();
        self.vaddr.is_ipv6() == v6 && (self.daddr.is_ipv6() == v6 || v6)
    }
}

/// Why an entry could not be added to a message.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum EncodeError {
    #[error("the message is full")]
    Full,
    #[error("addresses of mixed families")]
    MixedFamilies,
    #[error("persistence engine data or name too long")]
    PeTooLong,
}

/// Fills one version 1 message, up to `maxlen` bytes (the sync daemon's
/// `sync_maxlen`: the interface MTU less the IP and UDP headers).
#[derive(Debug)]
pub struct Encoder {
    buf: Vec<u8>,
    maxlen: usize,
}

impl Encoder {
    pub fn new(syncid: u8, maxlen: usize) -> Encoder {
        let maxlen = maxlen.clamp(HEADER_LEN + ENTRY_V6_LEN, 0xffff);
        let mut buf = Vec::with_capacity(maxlen);
        buf.extend_from_slice(&[0, syncid, 0, HEADER_LEN as u8, 0, VERSION, 0, 0]);
        Encoder { buf, maxlen }
    }

    pub fn count(&self) -> usize {
        self.buf[4] as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count() == 0
    }

    /// Appends `c`, padding the previous entry to 4 bytes first. `Full`
    /// when it does not fit, or when the message already holds 255 entries
    /// (the count is one byte): send this message and start another.
    pub fn push(&mut self, c: &SyncConn) -> Result<(), EncodeError> {
        let v6 = c.is_v6();
        if !c.families_ok() {
            return Err(EncodeError::MixedFamilies);
        }
        if let Some((data, name)) = &c.pe {
            if data.len() > PE_DATA_MAX || name.len() > PE_NAME_MAX || data.is_empty() {
                return Err(EncodeError::PeTooLong);
            }
        }
        let len = c.wire_len();
        let pad = (4 - self.buf.len() % 4) % 4;
        if self.count() == 255 || self.buf.len() + pad + len > self.maxlen {
            return Err(EncodeError::Full);
        }
        self.buf.resize(self.buf.len() + pad, 0);
        let b = &mut self.buf;
        b.push(if v6 { 1 } else { 0 });
        b.push(c.protocol);
        b.extend_from_slice(&((len as u16) & 0x0fff).to_be_bytes());
        b.extend_from_slice(&(c.flags & !flags::HASHED).to_be_bytes());
        b.extend_from_slice(&c.state.to_be_bytes());
        b.extend_from_slice(&c.cport.to_be_bytes());
        b.extend_from_slice(&c.vport.to_be_bytes());
        b.extend_from_slice(&c.dport.to_be_bytes());
        b.extend_from_slice(&c.fwmark.to_be_bytes());
        b.extend_from_slice(&c.timeout_s.to_be_bytes());
        let daddr = match (v6, c.daddr) {
            (true, IpAddr::V4(a)) => IpAddr::V6(a.to_ipv6_mapped()),
            (_, a) => a,
        };
        for a in [c.caddr, c.vaddr, daddr] {
            put_addr(b, a);
        }
        if let Some((i, o)) = c.seq {
            b.extend_from_slice(&[OPT_SEQ_DATA, SEQ_OPT_LEN as u8]);
            for s in [i, o] {
                b.extend_from_slice(&s.init_seq.to_be_bytes());
                b.extend_from_slice(&s.delta.to_be_bytes());
                b.extend_from_slice(&s.previous_delta.to_be_bytes());
            }
        }
        if let Some((data, name)) = &c.pe {
            b.extend_from_slice(&[OPT_PE_DATA, data.len() as u8]);
            b.extend_from_slice(data);
            if !name.is_empty() {
                b.extend_from_slice(&[OPT_PE_NAME, name.len() as u8]);
                b.extend_from_slice(name.as_bytes());
            }
        }
        if let Some((a, p)) = c.fullnat {
            b.extend_from_slice(&[OPT_FULLNAT, if a.is_ipv6() { 18 } else { 6 }]);
            put_addr(b, a);
            b.extend_from_slice(&p.to_be_bytes());
        }
        if let (true, IpAddr::V4(a)) = (v6, c.daddr) {
            b.extend_from_slice(&[OPT_DADDR4, 4]);
            b.extend_from_slice(&a.octets());
        }
        if let Some(ws) = c.synproxy_ws {
            b.extend_from_slice(&[OPT_SYNPROXY, 1, ws]);
        }
        b[4] += 1;
        let size = b.len() as u16;
        b[2..4].copy_from_slice(&size.to_be_bytes());
        Ok(())
    }

    /// The message as it goes on the wire.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Empties the message for the next batch, keeping its buffer.
    pub fn clear(&mut self) {
        self.buf.truncate(HEADER_LEN);
        self.buf[2..4].copy_from_slice(&(HEADER_LEN as u16).to_be_bytes());
        self.buf[4] = 0;
    }
}

fn put_addr(b: &mut Vec<u8>, a: IpAddr) {
    match a {
        IpAddr::V4(a) => b.extend_from_slice(&a.octets()),
        IpAddr::V6(a) => b.extend_from_slice(&a.octets()),
    }
}

/// Why a whole message was dropped (the kernel's "Dropping buffer").
#[derive(Debug, Error, PartialEq, Eq)]
pub enum MessageError {
    #[error("message shorter than its header")]
    TooShort,
    #[error("size field {field} but {len} bytes received")]
    BadSize { field: usize, len: usize },
    #[error("sync id {got}, expecting {want}")]
    OtherSyncId { got: u8, want: u8 },
    #[error("entry {0} runs past the message")]
    Truncated(usize),
    #[error("entry {0} has an unknown version")]
    UnknownEntryVersion(usize),
    #[error("entry {0} is malformed")]
    Malformed(usize),
}

/// Why one entry was skipped (the rest of the message is used).
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
pub enum EntryError {
    #[error("unknown mandatory option {0}")]
    UnknownOption(u8),
    #[error("protocol {0} is not synchronised")]
    Protocol(u8),
    #[error("state {state} is not a state of protocol {protocol}")]
    State { protocol: u8, state: u16 },
    #[error("persistence data without an engine name")]
    PeWithoutName,
    #[error("IPv4 server option in an IPv4 entry, or not matching the daddr field")]
    BadDaddr4,
}

/// What one message held, in order.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Decoded {
    pub syncid: u8,
    pub version: u8,
    pub conns: Vec<SyncConn>,
    pub skipped: Vec<EntryError>,
}

/// Decodes one datagram. `want_syncid` 0 accepts every sync id, as the
/// kernel's backup does.
pub fn decode(m: &[u8], want_syncid: u8) -> Result<Decoded, MessageError> {
    if m.len() < V0_HEADER_LEN {
        return Err(MessageError::TooShort);
    }
    let field = u16::from_be_bytes([m[2], m[3]]) as usize;
    if field != m.len() {
        return Err(MessageError::BadSize {
            field,
            len: m.len(),
        });
    }
    if want_syncid != 0 && m[1] != want_syncid {
        return Err(MessageError::OtherSyncId {
            got: m[1],
            want: want_syncid,
        });
    }
    if m.len() >= HEADER_LEN && m[0] == 0 && m[5] == VERSION && m[6] == 0 && m[7] == 0 {
        decode_v1(m)
    } else {
        decode_v0(m)
    }
}

fn decode_v1(m: &[u8]) -> Result<Decoded, MessageError> {
    let mut out = Decoded {
        syncid: m[1],
        version: 1,
        ..Default::default()
    };
    let mut p = HEADER_LEN;
    for i in 0..m[4] as usize {
        if p + ENTRY_V4_LEN > m.len() {
            return Err(MessageError::Truncated(i));
        }
        let vs = u16::from_be_bytes([m[p + 2], m[p + 3]]);
        let end = p + (vs & 0x0fff) as usize;
        if end > m.len() {
            return Err(MessageError::Truncated(i));
        }
        if vs >> 12 != 0 {
            return Err(MessageError::UnknownEntryVersion(i));
        }
        match entry_v1(&m[p..end]) {
            Ok(Ok(c)) => out.conns.push(c),
            Ok(Err(e)) => out.skipped.push(e),
            Err(()) => return Err(MessageError::Malformed(i)),
        }
        p += ((vs & 0x0fff) as usize + 3) & !3;
    }
    Ok(out)
}

/// One version 1 entry. The outer error drops the whole message (as the
/// kernel's negative return codes do), the inner one the entry.
fn entry_v1(e: &[u8]) -> Result<Result<SyncConn, EntryError>, ()> {
    let v6 = match e[0] {
        0 => false,
        t if t & 1 != 0 => true,
        _ => return Err(()),
    };
    let fixed = if v6 { ENTRY_V6_LEN } else { ENTRY_V4_LEN };
    if e.len() < fixed {
        return Err(());
    }
    let al = if v6 { 16 } else { 4 };
    let addr = |off: usize| read_addr(&e[off..off + al]);
    let mut c = SyncConn {
        protocol: e[1],
        flags: u32::from_be_bytes([e[4], e[5], e[6], e[7]]),
        state: u16::from_be_bytes([e[8], e[9]]),
        cport: u16::from_be_bytes([e[10], e[11]]),
        vport: u16::from_be_bytes([e[12], e[13]]),
        dport: u16::from_be_bytes([e[14], e[15]]),
        fwmark: u32::from_be_bytes([e[16], e[17], e[18], e[19]]),
        timeout_s: u32::from_be_bytes([e[20], e[21], e[22], e[23]]),
        caddr: addr(24),
        vaddr: addr(24 + al),
        daddr: addr(24 + 2 * al),
        seq: None,
        pe: None,
        fullnat: None,
        synproxy_ws: None,
    };
    let mut daddr4 = None;
    let mut pe_data: Option<&[u8]> = None;
    let mut pe_name: Option<&[u8]> = None;
    let mut unknown = None;
    let mut o = &e[fixed..];
    while !o.is_empty() {
        if o.len() < 2 {
            return Err(());
        }
        let (ty, len) = (o[0], o[1] as usize);
        if len == 0 || 2 + len > o.len() {
            return Err(());
        }
        let v = &o[2..2 + len];
        match ty & !OPT_F_PARAM {
            OPT_SEQ_DATA => {
                if len != SEQ_OPT_LEN || c.seq.is_some() {
                    return Err(());
                }
                let w = |i: usize| u32::from_be_bytes([v[i], v[i + 1], v[i + 2], v[i + 3]]);
                let s = |b: usize| Seq {
                    init_seq: w(b),
                    delta: w(b + 4),
                    previous_delta: w(b + 8),
                };
                c.seq = Some((s(0), s(12)));
            }
            OPT_PE_DATA => {
                if len > PE_DATA_MAX || pe_data.replace(v).is_some() {
                    return Err(());
                }
            }
            OPT_PE_NAME => {
                if len > PE_NAME_MAX || pe_name.replace(v).is_some() {
                    return Err(());
                }
            }
            OPT_DADDR4 if ty == OPT_DADDR4 => {
                if len != 4 || daddr4.is_some() {
                    return Err(());
                }
                daddr4 = Some(std::net::Ipv4Addr::new(v[0], v[1], v[2], v[3]));
            }
            _ if ty == OPT_SYNPROXY && len == 1 => c.synproxy_ws = Some(v[0]),
            _ if ty == OPT_FULLNAT && (len == 6 || len == 18) => {
                c.fullnat = Some((
                    read_addr(&v[..len - 2]),
                    u16::from_be_bytes([v[len - 2], v[len - 1]]),
                ));
            }
            _ if ty & OPT_F_PARAM != 0 => {}
            _ => unknown = unknown.or(Some(ty)),
        }
        o = &o[2 + len..];
    }
    if let Some(ty) = unknown {
        return Ok(Err(EntryError::UnknownOption(ty)));
    }
    if let Some(a) = daddr4 {
        // Only an IPv6 entry has an IPv4 server, and its daddr field must
        // say the same address, mapped.
        if !v6 || c.daddr != IpAddr::V6(a.to_ipv6_mapped()) {
            return Ok(Err(EntryError::BadDaddr4));
        }
        c.daddr = IpAddr::V4(a);
    }
    match (pe_data, pe_name) {
        (Some(d), Some(n)) => c.pe = Some((d.to_vec(), String::from_utf8_lossy(n).into_owned())),
        (Some(_), None) => return Ok(Err(EntryError::PeWithoutName)),
        _ => {}
    }
    Ok(check_state(c))
}

/// The kernel checks the protocol and state of a connection (not of a
/// template, whose state it only logs).
fn check_state(c: SyncConn) -> Result<SyncConn, EntryError> {
    if c.is_template() {
        return Ok(c);
    }
    let states = match c.protocol {
        6 => TCP_STATES,
        17 => UDP_STATES,
        p => return Err(EntryError::Protocol(p)),
    };
    if c.state >= states {
        return Err(EntryError::State {
            protocol: c.protocol,
            state: c.state,
        });
    }
    Ok(c)
}

fn read_addr(b: &[u8]) -> IpAddr {
    match b.len() {
        4 => IpAddr::from(<[u8; 4]>::try_from(b).unwrap()),
        _ => IpAddr::from(<[u8; 16]>::try_from(b).unwrap()),
    }
}

/// Version 0: a 4-byte header (count, sync id, size) and 24-byte IPv4
/// entries with 16-bit flags, followed by 24 bytes of sequence data when
/// the flags say so; no timeout (the receiver uses its own).
fn decode_v0(m: &[u8]) -> Result<Decoded, MessageError> {
    let mut out = Decoded {
        syncid: m[1],
        version: 0,
        ..Default::default()
    };
    let mut p = V0_HEADER_LEN;
    for i in 0..m[0] as usize {
        if p + V0_ENTRY_LEN > m.len() {
            return Err(MessageError::Truncated(i));
        }
        let e = &m[p..];
        let fl = (u16::from_be_bytes([e[20], e[21]]) as u32) & !flags::HASHED;
        let mut len = V0_ENTRY_LEN;
        let mut seq = None;
        if fl & flags::SEQ_MASK != 0 {
            len += SEQ_OPT_LEN;
            if p + len > m.len() {
                return Err(MessageError::Truncated(i));
            }
            let w = |i: usize| u32::from_be_bytes([e[i], e[i + 1], e[i + 2], e[i + 3]]);
            let s = |b: usize| Seq {
                init_seq: w(b),
                delta: w(b + 4),
                previous_delta: w(b + 8),
            };
            seq = Some((s(24), s(36)));
        }
        let a = |off: usize| read_addr(&e[off..off + 4]);
        let c = SyncConn {
            protocol: e[1],
            flags: fl,
            state: u16::from_be_bytes([e[22], e[23]]),
            cport: u16::from_be_bytes([e[2], e[3]]),
            vport: u16::from_be_bytes([e[4], e[5]]),
            dport: u16::from_be_bytes([e[6], e[7]]),
            caddr: a(8),
            vaddr: a(12),
            daddr: a(16),
            fwmark: 0,
            timeout_s: 0,
            seq,
            pe: None,
            fullnat: None,
            synproxy_ws: None,
        };
        match check_state(c) {
            Ok(c) => out.conns.push(c),
            Err(e) => out.skipped.push(e),
        }
        p += len;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn v4(c: [u8; 4]) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(c))
    }

    fn conn() -> SyncConn {
        SyncConn {
            protocol: 6,
            flags: flags::DROUTE | flags::HASHED,
            state: 1,
            caddr: v4([198, 19, 0, 7]),
            cport: 40000,
            vaddr: v4([198, 18, 0, 100]),
            vport: 80,
            daddr: v4([198, 18, 1, 11]),
            dport: 80,
            fwmark: 0,
            timeout_s: 900,
            seq: None,
            pe: None,
            fullnat: None,
            synproxy_ws: None,
        }
    }

    /// The bytes the kernel's `ip_vs_sync_conn` writes for this connection:
    /// header, then one 36-byte IPv4 entry (HASHED masked off).
    #[test]
    fn one_ipv4_entry_byte_for_byte() {
        let mut e = Encoder::new(7, 1472);
        e.push(&conn()).unwrap();
        let want: Vec<u8> = [
            &[0, 7, 0, 44, 1, 1, 0, 0][..],
            &[0, 6, 0, 36, 0, 0, 0, 3, 0, 1],
            &[0x9c, 0x40, 0, 80, 0, 80],
            &[0, 0, 0, 0, 0, 0, 0x03, 0x84],
            &[198, 19, 0, 7, 198, 18, 0, 100, 198, 18, 1, 11],
        ]
        .concat();
        assert_eq!(e.bytes(), &want[..]);
        let d = decode(e.bytes(), 0).unwrap();
        let mut c = conn();
        c.flags &= !flags::HASHED;
        assert_eq!(
            (d.syncid, d.version, d.conns, d.skipped),
            (7, 1, vec![c], vec![])
        );
    }

    fn v6(s: &str) -> IpAddr {
        IpAddr::V6(s.parse::<Ipv6Addr>().unwrap())
    }

    /// An IPv6 DR connection: the header, then one 72-byte `struct
    /// ip_vs_sync_v6` (type 1 = STYPE_F_INET6, the 24 bytes IPv4 has, then
    /// caddr, vaddr, daddr as 16-byte `in6_addr`s), written by hand.
    #[test]
    fn one_ipv6_entry_byte_for_byte() {
        let mut c = conn();
        c.flags = flags::DROUTE | flags::NOOUTPUT;
        c.caddr = v6("2001:db8:1::10");
        c.vaddr = v6("2001:db8::64");
        c.daddr = v6("2001:db8:2::b");
        let mut e = Encoder::new(7, 1472);
        e.push(&c).unwrap();
        let want: Vec<u8> = [
            // reserved, syncid, size 80, count 1, version 1, spare
            &[0, 7, 0, 80, 1, 1, 0, 0][..],
            // type (IPv6), protocol TCP, ver_size (version 0, size 72)
            &[1, 6, 0, 72],
            // flags: DROUTE 0x03 | NOOUTPUT 0x80
            &[0, 0, 0, 0x83],
            // state ESTABLISHED, cport 40000, vport 80, dport 80
            &[0, 1, 0x9c, 0x40, 0, 80, 0, 80],
            // fwmark, timeout 900 s
            &[0, 0, 0, 0, 0, 0, 0x03, 0x84],
            &[
                0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
            ],
            &[
                0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x64,
            ],
            &[
                0x20, 0x01, 0x0d, 0xb8, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0b,
            ],
        ]
        .concat();
        assert_eq!(e.bytes(), &want[..]);
        assert_eq!(decode(&want, 7).unwrap().conns, vec![c]);
    }

    /// A SYN-proxied NAT64 connection: an IPv6 entry whose daddr is the
    /// IPv4-mapped server, then `IPVS_OPT_SEQ_DATA` (type 1, length 24:
    /// `struct ip_vs_sync_conn_options`, in_seq then out_seq, each
    /// init_seq, delta, previous_delta, big-endian), ferrovs's FULLNAT
    /// option, the mandatory IPv4-server option (type 9: bit 6,
    /// IPVS_OPT_F_PARAM, clear) and the optional window-scale one.
    #[test]
    fn a_synproxied_nat64_entry_byte_for_byte() {
        let mut c = conn();
        c.flags = flags::FULLNAT | flags::OUT_SEQ;
        c.caddr = v6("2001:db8:1::10");
        c.vaddr = v6("2001:db8::64");
        c.daddr = v4([198, 18, 1, 11]);
        c.seq = Some((
            Seq::default(),
            Seq {
                init_seq: 0,
                delta: 0xf000_0001,
                previous_delta: 0xf000_0001,
            },
        ));
        c.fullnat = Some((v4([198, 18, 1, 100]), 1025));
        c.synproxy_ws = Some(7);
        let mut e = Encoder::new(2, 1472);
        e.push(&c).unwrap();
        // 72 + 26 (seq) + 8 (FULLNAT) + 6 (IPv4 server) + 3 (wscale).
        let want: Vec<u8> = [
            &[0, 2, 0, 123, 1, 1, 0, 0][..],
            &[1, 6, 0, 115],
            // flags: FULLNAT 0x05 | OUT_SEQ 0x0200
            &[0, 0, 0x02, 0x05],
            &[0, 1, 0x9c, 0x40, 0, 80, 0, 80],
            &[0, 0, 0, 0, 0, 0, 0x03, 0x84],
            &[
                0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
            ],
            &[
                0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x64,
            ],
            // ::ffff:198.18.1.11
            &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 18, 1, 11],
            &[1, 24],
            &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            &[0, 0, 0, 0, 0xf0, 0, 0, 1, 0xf0, 0, 0, 1],
            &[0x48, 6, 198, 18, 1, 100, 0x04, 0x01],
            &[9, 4, 198, 18, 1, 11],
            &[0x4a, 1, 7],
        ]
        .concat();
        assert_eq!(e.bytes(), &want[..]);
        assert_eq!(decode(&want, 0).unwrap().conns, vec![c]);
        assert_eq!(OPT_DADDR4 & OPT_F_PARAM, 0, "mandatory: a kernel skips it");
        assert_ne!(OPT_SYNPROXY & OPT_F_PARAM, 0, "optional");
    }

    /// The IPv4-server option is checked: in an IPv4 entry, or naming
    /// another address than the mapped daddr, the entry is skipped (the
    /// message's others are used); a kernel's IPv6 entry with a mapped
    /// daddr and no option stays an IPv6 one.
    #[test]
    fn the_ipv4_server_option_must_agree() {
        let mut c = conn();
        c.caddr = v6("2001:db8:1::10");
        c.vaddr = v6("2001:db8::64");
        c.daddr = v4([198, 18, 1, 11]);
        let mut e = Encoder::new(0, 1472);
        e.push(&c).unwrap();
        e.push(&conn()).unwrap();
        let good = e.bytes().to_vec();
        // The option's address is at 8 + 72 + 2 (the entry is 78 long).
        let mut m = good.clone();
        m[8 + 72 + 2 + 3] = 12;
        let d = decode(&m, 0).unwrap();
        assert_eq!(d.skipped, vec![EntryError::BadDaddr4]);
        assert_eq!(d.conns.len(), 1);
        // Without the option (a kernel master's, by hand): the mapped
        // address is an IPv6 one.
        let mut m = good[..8 + 72].to_vec();
        m[8 + 2..8 + 4].copy_from_slice(&72u16.to_be_bytes());
        m[2..4].copy_from_slice(&80u16.to_be_bytes());
        m[4] = 1;
        let d = decode(&m, 0).unwrap();
        assert_eq!(d.conns[0].daddr, v6("::ffff:198.18.1.11"));
        // An IPv4 entry with it is skipped.
        let mut m = good[8 + 80..].to_vec();
        m.splice(0..0, [0, 0, 0, 0, 1, 1, 0, 0]);
        m.extend_from_slice(&[9, 4, 198, 18, 1, 11]);
        m[8 + 2..8 + 4].copy_from_slice(&42u16.to_be_bytes());
        let n = m.len() as u16;
        m[2..4].copy_from_slice(&n.to_be_bytes());
        let d = decode(&m, 0).unwrap();
        assert_eq!(d.skipped, vec![EntryError::BadDaddr4]);
        // Mixed the other way is refused by the encoder.
        let mut bad = conn();
        bad.daddr = v6("2001:db8:2::b");
        assert_eq!(e.push(&bad), Err(EncodeError::MixedFamilies));
    }

    #[test]
    fn options_padding_and_round_trip() {
        let mut e = Encoder::new(0, 1472);
        let mut a = conn();
        a.flags = flags::FULLNAT | flags::IN_SEQ;
        a.seq = Some((
            Seq {
                init_seq: 1,
                delta: 2,
                previous_delta: 3,
            },
            Seq {
                init_seq: 4,
                delta: 5,
                previous_delta: 6,
            },
        ));
        a.fullnat = Some((v4([198, 18, 1, 100]), 5001));
        let mut b = conn();
        b.flags = flags::DROUTE;
        b.caddr = IpAddr::V6("2001:db8:1::10".parse::<Ipv6Addr>().unwrap());
        b.vaddr = IpAddr::V6("2001:db8::64".parse::<Ipv6Addr>().unwrap());
        b.daddr = IpAddr::V6("2001:db8:2::b".parse::<Ipv6Addr>().unwrap());
        b.pe = Some((b"call-id".to_vec(), "sip".into()));
        let mut t = conn();
        t.flags = flags::TEMPLATE | flags::MASQ;
        t.protocol = 0;
        t.state = 0;
        t.cport = 0;
        for c in [&a, &b, &t] {
            e.push(c).unwrap();
        }
        let m = e.bytes();
        // a: 36 + 26 (seq) + 8 (fullnat) = 70 bytes, padded to 72 before b.
        assert_eq!(&m[8 + 2..8 + 4], &70u16.to_be_bytes());
        assert_eq!(&m[8 + 70..8 + 72], &[0, 0]);
        assert_eq!(m[8 + 72], 1, "b is IPv6");
        let d = decode(m, 0).unwrap();
        assert_eq!(d.conns, vec![a, b, t]);
    }

    #[test]
    fn a_full_message_says_so() {
        let mut e = Encoder::new(1, 200);
        let mut n = 0;
        while e.push(&conn()).is_ok() {
            n += 1;
        }
        assert_eq!(n, (200 - 8) / 36);
        assert_eq!(e.push(&conn()), Err(EncodeError::Full));
        assert_eq!(decode(e.bytes(), 1).unwrap().conns.len(), n);
        e.clear();
        assert!(e.is_empty());
        assert_eq!(e.bytes(), &[0, 1, 0, 8, 0, 1, 0, 0]);
        let mut mixed = conn();
        mixed.daddr = IpAddr::V6(Ipv6Addr::LOCALHOST);
        assert_eq!(e.push(&mixed), Err(EncodeError::MixedFamilies));
    }

    #[test]
    fn receiver_checks_follow_the_kernel() {
        let mut e = Encoder::new(3, 1472);
        e.push(&conn()).unwrap();
        let good = e.bytes().to_vec();
        assert_eq!(
            decode(&good, 4),
            Err(MessageError::OtherSyncId { got: 3, want: 4 })
        );
        assert!(decode(&good, 3).is_ok());
        assert_eq!(
            decode(&good[..40], 0),
            Err(MessageError::BadSize { field: 44, len: 40 })
        );
        assert_eq!(decode(&good[..2], 0), Err(MessageError::TooShort));
        // An entry size past the end drops the message.
        let mut m = good.clone();
        m[10..12].copy_from_slice(&60u16.to_be_bytes());
        assert_eq!(decode(&m, 0), Err(MessageError::Truncated(0)));
        // An entry version nibble drops it.
        let mut m = good.clone();
        m[10] |= 0x10;
        assert_eq!(decode(&m, 0), Err(MessageError::UnknownEntryVersion(0)));
        // A bad state skips the entry alone.
        let mut m = good.clone();
        m[16..18].copy_from_slice(&11u16.to_be_bytes());
        let d = decode(&m, 0).unwrap();
        assert_eq!(
            (d.conns.len(), d.skipped),
            (
                0,
                vec![EntryError::State {
                    protocol: 6,
                    state: 11
                }]
            )
        );
        // An unknown mandatory option skips it; an optional one is ignored.
        for (ty, ok) in [(11u8, false), (OPT_F_PARAM | 11, true)] {
            let mut m = good.clone();
            m.extend_from_slice(&[ty, 2, 0xaa, 0xbb]);
            m[10..12].copy_from_slice(&40u16.to_be_bytes());
            m[2..4].copy_from_slice(&48u16.to_be_bytes());
            let d = decode(&m, 0).unwrap();
            assert_eq!(d.conns.len() == 1, ok, "option type {ty}");
        }
        // An option of length 0 drops the message.
        let mut m = good.clone();
        m.extend_from_slice(&[1, 0, 0, 0]);
        m[10..12].copy_from_slice(&40u16.to_be_bytes());
        m[2..4].copy_from_slice(&48u16.to_be_bytes());
        assert_eq!(decode(&m, 0), Err(MessageError::Malformed(0)));
    }

    /// A version 0 message (`sync_version 0`): 4-byte header, 24-byte entry.
    #[test]
    fn version_0_is_read() {
        let m: Vec<u8> = [
            &[1, 2, 0, 28][..],
            &[0, 17, 0x13, 0x88, 0, 53, 0, 53],
            &[198, 19, 0, 7, 198, 18, 0, 100, 198, 18, 1, 11],
            &[0, 0x43, 0, 0],
        ]
        .concat();
        let d = decode(&m, 0).unwrap();
        assert_eq!(d.version, 0);
        let c = &d.conns[0];
        assert_eq!(
            (c.protocol, c.cport, c.vport, c.flags, c.timeout_s),
            (17, 5000, 53, 0x03, 0)
        );
        assert_eq!(c.daddr, v4([198, 18, 1, 11]));
    }
}
