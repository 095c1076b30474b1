//! The master's side of the wire: the workers' records turned into sync
//! message entries and batched into messages of at most `maxlen` bytes.
//! A message goes out when the next entry does not fit, or when its first
//! entry has waited [`FLUSH_MS`]: IPVS flushes a partial buffer after 2 s
//! (`IPVS_SYNC_FLUSH_TIME`); ferrovs waits less, since a connection a
//! backup has not heard of when the master dies is lost, and a message
//! costs it one syscall.

use super::message::{flags, EncodeError, Encoder, Seq, SyncConn};
use ferrovs_dataplane::service::FwdMethod;
use ferrovs_dataplane::sync::{Record, SynSeq, SyncRecord, SyncRecord6};
use ferrovs_dataplane::wire::ipv4;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The longest a partial message waits for more entries.
pub const FLUSH_MS: u64 = 100;

/// The forwarding bits of `fwd`.
fn fwd_flags(fwd: FwdMethod) -> u32 {
    match fwd {
        FwdMethod::Nat => flags::MASQ,
        FwdMethod::Tun => flags::TUNNEL,
        FwdMethod::Dr => flags::DROUTE,
        FwdMethod::FullNat => flags::FULLNAT,
    }
}

/// The flags IPVS sets on such a connection: its forwarding method,
/// TEMPLATE, INACTIVE unless TCP ESTABLISHED, NOOUTPUT where the director
/// sees no replies, OUT_SEQ with a sequence translation.
fn conn_flags(fwd: FwdMethod, template: bool, proto: u8, state: u8, seq: bool) -> u32 {
    let mut f = fwd_flags(fwd);
    if template {
        f |= flags::TEMPLATE;
    } else if proto != ipv4::PROTO_TCP || state != 1 {
        // Only ESTABLISHED counts as active (IPVS's INACTIVE flag).
        f |= flags::INACTIVE;
    }
    if !fwd.sees_replies() {
        f |= flags::NOOUTPUT;
    }
    if seq {
        f |= flags::OUT_SEQ;
    }
    f
}

/// A SYN proxy's translation as IPVS's sequence option: nothing on the
/// client's sequence numbers (`in_seq` zero), the server's shifted by
/// `cookie - rs_isn` whatever their value (`out_seq`, with
/// `previous_delta` equal to `delta` so that `init_seq` does not matter).
fn seq_option(s: Option<SynSeq>) -> (Option<(Seq, Seq)>, Option<u8>) {
    match s {
        None => (None, None),
        Some(s) => {
            let d = s.delta.wrapping_neg();
            let out = Seq {
                init_seq: 0,
                delta: d,
                previous_delta: d,
            };
            (Some((Seq::default(), out)), Some(s.ws))
        }
    }
}

/// The translation a received entry carries: ferrovs's window-scale
/// option and IPVS's `out_seq` with OUT_SEQ (a kernel master's sequence
/// data, from an application helper, is no SYN proxy's).
fn synseq_of(c: &SyncConn) -> Option<SynSeq> {
    match (c.synproxy_ws, c.seq) {
        (Some(ws), Some((_, out))) if c.flags & flags::OUT_SEQ != 0 => Some(SynSeq {
            delta: out.delta.wrapping_neg(),
            ws,
        }),
        _ => None,
    }
}

/// An IPv6 record's address as the wire has it: IPv4-mapped ones (NAT64's
/// and TUN's IPv4 servers, NAT64's local addresses) as IPv4.
fn addr6(a: [u8; 16]) -> IpAddr {
    let a = Ipv6Addr::from(a);
    match a.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(a),
    }
}

/// The entry for a record, flags as IPVS sets them on its connections.
pub fn to_wire(r: &Record) -> SyncConn {
    match r {
        Record::V4(r) => to_wire4(r),
        Record::V6(r) => to_wire6(r),
    }
}

fn to_wire4(r: &SyncRecord) -> SyncConn {
    let (seq, synproxy_ws) = seq_option(r.synproxy);
    let a = |x: [u8; 4]| IpAddr::V4(Ipv4Addr::from(x));
    SyncConn {
        protocol: r.proto,
        flags: conn_flags(r.fwd, r.template, r.proto, r.state, seq.is_some()),
        state: r.state as u16,
        caddr: a(r.caddr),
        cport: r.cport,
        vaddr: a(r.vaddr),
        vport: r.vport,
        daddr: a(r.daddr),
        dport: r.dport,
        fwmark: 0,
        timeout_s: r.timeout_s,
        seq,
        pe: None,
        fullnat: (r.fwd == FwdMethod::FullNat && !r.template).then(|| (a(r.laddr), r.lport)),
        synproxy_ws,
    }
}

fn to_wire6(r: &SyncRecord6) -> SyncConn {
    let (seq, synproxy_ws) = seq_option(r.synproxy);
    let a = |x: [u8; 16]| IpAddr::V6(Ipv6Addr::from(x));
    SyncConn {
        protocol: r.proto,
        flags: conn_flags(r.fwd, r.template, r.proto, r.state, seq.is_some()),
        state: r.state as u16,
        caddr: a(r.caddr),
        cport: r.cport,
        vaddr: a(r.vaddr),
        vport: r.vport,
        daddr: addr6(r.daddr),
        dport: r.dport,
        fwmark: 0,
        timeout_s: r.timeout_s,
        seq,
        pe: None,
        fullnat: (r.fwd == FwdMethod::FullNat && !r.template).then(|| (addr6(r.laddr), r.lport)),
        synproxy_ws,
    }
}

/// Why a received entry cannot be installed here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unusable {
    /// Families the wire allows but no connection of ours has (an IPv4
    /// entry is all IPv4; an IPv6 one has an IPv6 client and VIP).
    Families,
    /// A forwarding method ferrovs has no use for (local node, bypass).
    Forwarding(u32),
    /// FULLNAT without its local address and port (a kernel master's,
    /// or one without the ferrovs option).
    NoLocalAddress,
    /// A fwmark service's entry.
    Fwmark,
}

/// The record for a received entry.
pub fn from_wire(c: &SyncConn) -> Result<Record, Unusable> {
    let fwd = match c.flags & flags::FWD_MASK {
        flags::MASQ => FwdMethod::Nat,
        flags::TUNNEL => FwdMethod::Tun,
        flags::DROUTE => FwdMethod::Dr,
        flags::FULLNAT => FwdMethod::FullNat,
        other => return Err(Unusable::Forwarding(other)),
    };
    if c.fwmark != 0 {
        return Err(Unusable::Fwmark);
    }
    let template = c.is_template();
    let laddr = match (fwd, template, c.fullnat) {
        (FwdMethod::FullNat, false, Some(l)) => Some(l),
        (FwdMethod::FullNat, false, None) => return Err(Unusable::NoLocalAddress),
        _ => None,
    };
    let synproxy = synseq_of(c);
    let v4 = |a: IpAddr| match a {
        IpAddr::V4(a) => Ok(a.octets()),
        IpAddr::V6(_) => Err(Unusable::Families),
    };
    let v6 = |a: IpAddr| match a {
        IpAddr::V6(a) => Ok(a.octets()),
        IpAddr::V4(_) => Err(Unusable::Families),
    };
    // IPv4 servers and local addresses of an IPv6 connection, mapped.
    let any6 = |a: IpAddr| match a {
        IpAddr::V6(a) => a.octets(),
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
    };
    if c.caddr.is_ipv4() {
        let (laddr, lport) = match laddr {
            Some((a, p)) => (v4(a)?, p),
            None => ([0; 4], 0),
        };
        return Ok(Record::V4(SyncRecord {
            proto: c.protocol,
            state: c.state as u8,
            fwd,
            template,
            caddr: v4(c.caddr)?,
            cport: c.cport,
            vaddr: v4(c.vaddr)?,
            vport: c.vport,
            daddr: v4(c.daddr)?,
            dport: c.dport,
            laddr,
            lport,
            timeout_s: c.timeout_s,
            synproxy,
        }));
    }
    let (laddr, lport) = match laddr {
        Some((a, p)) => (any6(a), p),
        None => ([0; 16], 0),
    };
    Ok(Record::V6(SyncRecord6 {
        proto: c.protocol,
        state: c.state as u8,
        fwd,
        template,
        caddr: v6(c.caddr)?,
        cport: c.cport,
        vaddr: v6(c.vaddr)?,
        vport: c.vport,
        daddr: any6(c.daddr),
        dport: c.dport,
        laddr,
        lport,
        timeout_s: c.timeout_s,
        synproxy,
    }))
}

/// Fills messages from records.
#[derive(Debug)]
pub struct Batcher {
    enc: Encoder,
    /// When the message's first entry came (ms).
    since: Option<u64>,
}

impl Batcher {
    pub fn new(syncid: u8, maxlen: usize) -> Batcher {
        Batcher {
            enc: Encoder::new(syncid, maxlen),
            since: None,
        }
    }

    /// Adds a record; a message that it fills up is handed to `send`.
    pub fn push(&mut self, r: &Record, now_ms: u64, mut send: impl FnMut(&[u8], usize)) {
        let c = to_wire(r);
        match self.enc.push(&c) {
            Ok(()) => {}
            Err(EncodeError::Full) => {
                send(self.enc.bytes(), self.enc.count());
                self.enc.clear();
                // An entry always fits an empty message (maxlen is at least
                // a header and an IPv6 entry).
                let _ = self.enc.push(&c);
                self.since = None;
            }
            // Records have no persistence engine data, and their families
            // are ones the wire carries.
            Err(_) => return,
        }
        self.since.get_or_insert(now_ms);
    }

    /// Sends the partial message if it has waited long enough (or `force`).
    pub fn flush(&mut self, now_ms: u64, force: bool, mut send: impl FnMut(&[u8], usize)) {
        let due = self
            .since
            .is_some_and(|t| force || now_ms.saturating_sub(t) >= FLUSH_MS);
        if due && !self.enc.is_empty() {
            send(self.enc.bytes(), self.enc.count());
            self.enc.clear();
            self.since = None;
        }
    }

    pub fn pending(&self) -> usize {
        self.enc.count()
    }
}

#[cfg(test)]
mod tests {
    use super::super::message::{decode, ENTRY_V4_LEN, HEADER_LEN};
    use super::*;

    fn rec(cport: u16, fwd: FwdMethod) -> Record {
        SyncRecord {
            proto: ipv4::PROTO_TCP,
            state: 1,
            fwd,
            template: false,
            caddr: [198, 18, 0, 10],
            cport,
            vaddr: [198, 18, 0, 100],
            vport: 80,
            daddr: [198, 18, 1, 11],
            dport: 8080,
            laddr: if fwd == FwdMethod::FullNat {
                [198, 18, 1, 100]
            } else {
                [0; 4]
            },
            lport: if fwd == FwdMethod::FullNat { 1025 } else { 0 },
            timeout_s: 900,
            synproxy: None,
        }
        .into()
    }

    #[test]
    fn records_survive_the_wire_in_every_mode() {
        for fwd in [
            FwdMethod::Dr,
            FwdMethod::Nat,
            FwdMethod::FullNat,
            FwdMethod::Tun,
        ] {
            let r = rec(40000, fwd);
            assert_eq!(from_wire(&to_wire(&r)), Ok(r), "{fwd:?}");
        }
        let Record::V4(mut t) = rec(0, FwdMethod::Dr) else {
            unreachable!()
        };
        t.template = true;
        t.state = 0;
        let t = Record::V4(t);
        let c = to_wire(&t);
        assert_eq!(c.flags & flags::TEMPLATE, flags::TEMPLATE);
        assert_eq!(from_wire(&c), Ok(t));
    }

    fn a6(s: &str) -> [u8; 16] {
        s.parse::<Ipv6Addr>().unwrap().octets()
    }

    fn rec6(fwd: FwdMethod, nat64: bool) -> SyncRecord6 {
        let server = if nat64 {
            Ipv4Addr::new(198, 18, 1, 11).to_ipv6_mapped().octets()
        } else {
            a6("2001:db8:2::b")
        };
        let laddr = match (fwd, nat64) {
            (FwdMethod::FullNat, true) => Ipv4Addr::new(198, 18, 1, 100).to_ipv6_mapped().octets(),
            (FwdMethod::FullNat, false) => a6("2001:db8:2::100"),
            _ => [0; 16],
        };
        SyncRecord6 {
            proto: ipv4::PROTO_TCP,
            state: 1,
            fwd,
            template: false,
            caddr: a6("2001:db8:1::10"),
            cport: 40000,
            vaddr: a6("2001:db8::64"),
            vport: 80,
            daddr: server,
            dport: 8080,
            laddr,
            lport: if fwd == FwdMethod::FullNat { 1025 } else { 0 },
            timeout_s: 900,
            synproxy: None,
        }
    }

    #[test]
    fn ipv6_and_nat64_records_survive_the_wire() {
        for fwd in [
            FwdMethod::Dr,
            FwdMethod::Nat,
            FwdMethod::FullNat,
            FwdMethod::Tun,
        ] {
            let r: Record = rec6(fwd, false).into();
            let c = to_wire(&r);
            assert!(c.caddr.is_ipv6() && c.daddr.is_ipv6(), "{fwd:?}");
            assert_eq!(from_wire(&c), Ok(r), "{fwd:?}");
        }
        // NAT64 and TUN to an IPv4 server: the server (and NAT64's local
        // address) go out as IPv4 and come back IPv4-mapped.
        for fwd in [FwdMethod::FullNat, FwdMethod::Tun] {
            let r: Record = rec6(fwd, true).into();
            let c = to_wire(&r);
            assert_eq!(c.daddr, IpAddr::V4(Ipv4Addr::new(198, 18, 1, 11)));
            if fwd == FwdMethod::FullNat {
                assert_eq!(
                    c.fullnat,
                    Some((IpAddr::V4(Ipv4Addr::new(198, 18, 1, 100)), 1025))
                );
            }
            assert_eq!(from_wire(&c), Ok(r), "{fwd:?}");
        }
        // A template of a /64 prefix.
        let mut t = rec6(FwdMethod::Dr, false);
        t.template = true;
        t.state = 0;
        t.cport = 0;
        t.caddr = a6("2001:db8:1::");
        let c = to_wire(&t.into());
        assert_eq!(c.flags, flags::DROUTE | flags::NOOUTPUT | flags::TEMPLATE);
        assert_eq!(from_wire(&c), Ok(t.into()));
    }

    /// The SYN proxy's delta `rs_isn - cookie` goes out as IPVS's
    /// `out_seq.delta = cookie - rs_isn` with OUT_SEQ, and comes back.
    #[test]
    fn a_synproxy_delta_rides_in_the_sequence_option() {
        for mut r in [
            rec(1, FwdMethod::Nat),
            Record::V6(rec6(FwdMethod::FullNat, true)),
        ] {
            let s = SynSeq {
                delta: 0x1000_0005,
                ws: 7,
            };
            match &mut r {
                Record::V4(x) => x.synproxy = Some(s),
                Record::V6(x) => x.synproxy = Some(s),
            }
            let c = to_wire(&r);
            assert_eq!(c.flags & flags::SEQ_MASK, flags::OUT_SEQ);
            let (i, o) = c.seq.unwrap();
            assert_eq!(i, Seq::default());
            assert_eq!(
                o,
                Seq {
                    init_seq: 0,
                    delta: 0xefff_fffb,
                    previous_delta: 0xefff_fffb
                }
            );
            assert_eq!(c.synproxy_ws, Some(7));
            assert_eq!(from_wire(&c), Ok(r));
            // A kernel master's sequence data (an application helper's)
            // is no SYN proxy: installed without translation.
            let mut k = c.clone();
            k.synproxy_ws = None;
            assert!(match from_wire(&k).unwrap() {
                Record::V4(x) => x.synproxy.is_none(),
                Record::V6(x) => x.synproxy.is_none(),
            });
        }
    }

    #[test]
    fn an_ipv6_client_with_an_ipv4_vip_is_unusable() {
        let mut c = to_wire(&rec6(FwdMethod::Dr, false).into());
        c.vaddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 100));
        assert_eq!(from_wire(&c), Err(Unusable::Families));
    }

    #[test]
    fn flags_are_ipvs_ones() {
        let c = to_wire(&rec(1, FwdMethod::Dr));
        assert_eq!(c.flags, flags::DROUTE | flags::NOOUTPUT);
        let Record::V4(mut r) = rec(1, FwdMethod::Nat) else {
            unreachable!()
        };
        r.state = 4; // FIN_WAIT
        assert_eq!(to_wire(&r.into()).flags, flags::MASQ | flags::INACTIVE);
    }

    #[test]
    fn a_kernel_fullnat_entry_without_local_address_is_unusable() {
        let mut c = to_wire(&rec(1, FwdMethod::FullNat));
        c.fullnat = None;
        assert_eq!(from_wire(&c), Err(Unusable::NoLocalAddress));
        let mut c = to_wire(&rec(1, FwdMethod::Dr));
        c.flags = (c.flags & !flags::FWD_MASK) | 1;
        assert_eq!(from_wire(&c), Err(Unusable::Forwarding(1)));
    }

    #[test]
    fn batches_fill_maxlen_then_flush_on_age() {
        // Room for 40 IPv4 entries in 1472 bytes: (1472 - 8) / 36.
        let per = (1472 - HEADER_LEN) / ENTRY_V4_LEN;
        assert_eq!(per, 40);
        let mut b = Batcher::new(9, 1472);
        let mut sent: Vec<Vec<u8>> = Vec::new();
        for i in 0..100u16 {
            b.push(&rec(i, FwdMethod::Dr), 0, |m, _| sent.push(m.to_vec()));
        }
        assert_eq!(sent.len(), 2);
        assert_eq!(b.pending(), 20);
        b.flush(FLUSH_MS - 1, false, |m, _| sent.push(m.to_vec()));
        assert_eq!(sent.len(), 2, "not yet due");
        b.flush(FLUSH_MS, false, |m, _| sent.push(m.to_vec()));
        assert_eq!(sent.len(), 3);
        let mut ports = Vec::new();
        for m in &sent {
            assert!(m.len() <= 1472);
            let d = decode(m, 9).unwrap();
            assert_eq!(d.syncid, 9);
            ports.extend(d.conns.iter().map(|c| c.cport));
        }
        assert_eq!(ports, (0..100).collect::<Vec<u16>>());
        // Nothing pending: nothing sent.
        b.flush(10_000, true, |m, _| sent.push(m.to_vec()));
        assert_eq!(sent.len(), 3);
    }

    #[test]
    fn fullnat_entries_carry_the_option() {
        let mut b = Batcher::new(1, 1472);
        let mut sent: Vec<Vec<u8>> = Vec::new();
        b.push(&rec(7, FwdMethod::FullNat), 0, |_, _| {});
        b.flush(0, true, |m, _| sent.push(m.to_vec()));
        let d = decode(&sent[0], 1).unwrap();
        assert_eq!(
            d.conns[0].fullnat,
            Some((IpAddr::V4(Ipv4Addr::new(198, 18, 1, 100)), 1025))
        );
    }
}
