//! The master's side of the wire: the workers' records turned into sync
//! message entries and batched into messages of at most `maxlen` bytes.
//! A message goes out when the next entry does not fit, or when its first
//! entry has waited [`FLUSH_MS`]: IPVS flushes a partial buffer after 2 s
//! (`IPVS_SYNC_FLUSH_TIME`); ferrovs waits less, since a connection a
//! backup has not heard of when the master dies is lost, and a message
//! costs it one syscall.

use super::message::{flags, EncodeError, Encoder, SyncConn};
use ferrovs_dataplane::service::FwdMethod;
use ferrovs_dataplane::sync::SyncRecord;
use ferrovs_dataplane::wire::ipv4;
use std::net::{IpAddr, Ipv4Addr};

/// The longest a partial message waits for more entries.
pub const FLUSH_MS: u64 = 100;

/// The entry for a record, flags as IPVS sets them on its connections.
pub fn to_wire(r: &SyncRecord) -> SyncConn {
    let fwd = match r.fwd {
        FwdMethod::Nat => flags::MASQ,
        FwdMethod::Tun => flags::TUNNEL,
        FwdMethod::Dr => flags::DROUTE,
        FwdMethod::FullNat => flags::FULLNAT,
    };
    let mut f = fwd;
    if r.template {
        f |= flags::TEMPLATE;
    } else if r.proto != ipv4::PROTO_TCP || r.state != 1 {
        // Only ESTABLISHED counts as active (IPVS's INACTIVE flag).
        f |= flags::INACTIVE;
    }
    if !r.fwd.sees_replies() {
        f |= flags::NOOUTPUT;
    }
    let a = |x: [u8; 4]| IpAddr::V4(Ipv4Addr::from(x));
    SyncConn {
        protocol: r.proto,
        flags: f,
        state: r.state as u16,
        caddr: a(r.caddr),
        cport: r.cport,
        vaddr: a(r.vaddr),
        vport: r.vport,
        daddr: a(r.daddr),
        dport: r.dport,
        fwmark: 0,
        timeout_s: r.timeout_s,
        seq: None,
        pe: None,
        fullnat: (r.fwd == FwdMethod::FullNat && !r.template).then(|| (a(r.laddr), r.lport)),
    }
}

/// Why a received entry cannot be installed here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unusable {
    /// IPv6: not synchronised yet.
    Ipv6,
    /// A forwarding method ferrovs has no use for (local node, bypass).
    Forwarding(u32),
    /// FULLNAT without its local address and port (a kernel master's,
    /// or one without the ferrovs option).
    NoLocalAddress,
    /// A fwmark service's entry.
    Fwmark,
}

/// The record for a received entry.
pub fn from_wire(c: &SyncConn) -> Result<SyncRecord, Unusable> {
    let v4 = |a: IpAddr| match a {
        IpAddr::V4(a) => Ok(a.octets()),
        IpAddr::V6(_) => Err(Unusable::Ipv6),
    };
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
    let (laddr, lport) = match (fwd, template, c.fullnat) {
        (FwdMethod::FullNat, false, Some((a, p))) => (v4(a)?, p),
        (FwdMethod::FullNat, false, None) => return Err(Unusable::NoLocalAddress),
        _ => ([0; 4], 0),
    };
    Ok(SyncRecord {
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
    })
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
    pub fn push(&mut self, r: &SyncRecord, now_ms: u64, mut send: impl FnMut(&[u8], usize)) {
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
            // IPv4 records only, no persistence engine data.
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

    fn rec(cport: u16, fwd: FwdMethod) -> SyncRecord {
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
        }
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
        let mut t = rec(0, FwdMethod::Dr);
        t.template = true;
        t.state = 0;
        let c = to_wire(&t);
        assert_eq!(c.flags & flags::TEMPLATE, flags::TEMPLATE);
        assert_eq!(from_wire(&c), Ok(t));
    }

    #[test]
    fn flags_are_ipvs_ones() {
        let c = to_wire(&rec(1, FwdMethod::Dr));
        assert_eq!(c.flags, flags::DROUTE | flags::NOOUTPUT);
        let mut r = rec(1, FwdMethod::Nat);
        r.state = 4; // FIN_WAIT
        assert_eq!(to_wire(&r).flags, flags::MASQ | flags::INACTIVE);
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
