//! The backup's side of the wire: a received message decoded (a wrong
//! sync id or a malformed message dropped whole, as the kernel drops it),
//! its entries turned into records and sorted by the worker that must
//! hold each (`ferrovs_dataplane::sync::owner`).

use super::batch::from_wire;
use super::message::{decode, MessageError};
use ferrovs_dataplane::snapshot::Snapshot;
use ferrovs_dataplane::sync::{owner, Record};

/// One message's records, per worker.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Routed {
    pub per_worker: Vec<Vec<Record>>,
    /// Entries in the message.
    pub entries: usize,
    /// Entries the decoder skipped (unknown protocol, state or mandatory
    /// option) or that cannot be installed here (fwmark, other forwarding
    /// methods, FULLNAT without a local address).
    pub unusable: usize,
}

/// Decodes `msg` for sync id `want` (0: any, as the kernel's backup).
pub fn route(msg: &[u8], want: u8, snap: &Snapshot) -> Result<Routed, MessageError> {
    let d = decode(msg, want)?;
    let workers = snap.workers.max(1);
    let mut out = Routed {
        per_worker: vec![Vec::new(); workers],
        entries: d.conns.len() + d.skipped.len(),
        unusable: d.skipped.len(),
    };
    for c in &d.conns {
        match from_wire(c) {
            Ok(r) => {
                let w = owner(snap, &r).min(workers - 1);
                out.per_worker[w].push(r);
            }
            Err(_) => out.unusable += 1,
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::batch::Batcher;
    use super::*;
    use ferrovs_dataplane::conn::template::TemplateTable;
    use ferrovs_dataplane::service::FwdMethod;
    use ferrovs_dataplane::snapshot::SnapshotBuilder;
    use ferrovs_dataplane::sync::SyncRecord;
    use std::sync::Arc;

    fn snap(workers: usize) -> Snapshot {
        SnapshotBuilder::new(1, workers, Arc::new(TemplateTable::new(64)))
            .build()
            .unwrap()
    }

    fn rec(cport: u16, fwd: FwdMethod, lport: u16) -> SyncRecord {
        SyncRecord {
            proto: 6,
            state: 1,
            fwd,
            template: false,
            caddr: [198, 18, 0, 10],
            cport,
            vaddr: [198, 18, 0, 100],
            vport: 80,
            daddr: [198, 18, 1, 11],
            dport: 80,
            laddr: [198, 18, 1, 100],
            lport,
            timeout_s: 900,
            synproxy: None,
        }
    }

    fn message(syncid: u8, recs: &[SyncRecord]) -> Vec<u8> {
        let mut b = Batcher::new(syncid, 1472);
        for r in recs {
            b.push(&(*r).into(), 0, |_, _| panic!("one message"));
        }
        let mut m = Vec::new();
        b.flush(0, true, |x, _| m = x.to_vec());
        m
    }

    #[test]
    fn entries_go_to_their_owners() {
        let s = snap(4);
        let recs: Vec<SyncRecord> = (0..8)
            .map(|i| rec(1000 + i, FwdMethod::FullNat, 2000 + i))
            .collect();
        let r = route(&message(5, &recs), 5, &s).unwrap();
        assert_eq!(r.entries, 8);
        for (w, v) in r.per_worker.iter().enumerate() {
            assert_eq!(v.len(), 2);
            assert!(
                v.iter().all(|x| x.v4().unwrap().lport as usize % 4 == w),
                "local port slice"
            );
        }
        // NAT: the client hash both directions use.
        let nat: Vec<SyncRecord> = (0..8).map(|i| rec(3000 + i, FwdMethod::Nat, 0)).collect();
        let r = route(&message(5, &nat), 0, &s).unwrap();
        for (w, v) in r.per_worker.iter().enumerate() {
            assert!(v
                .iter()
                .all(|x| s.nat_owner(x.v4().unwrap().caddr, x.v4().unwrap().cport) == w));
        }
    }

    /// IPv6 entries go to their owners by the IPv6 rules: NAT66 by the
    /// IPv6 client hash, FULLNAT66 and NAT64 by the local port's slice.
    #[test]
    fn ipv6_entries_go_to_their_owners() {
        use ferrovs_dataplane::sync::SyncRecord6;
        let s = snap(4);
        let mut b = Batcher::new(5, 1472);
        let mut recs = Vec::new();
        for i in 0..12u16 {
            let fwd = [FwdMethod::Nat, FwdMethod::FullNat, FwdMethod::Dr][i as usize % 3];
            let mut caddr = [0x20, 1, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
            caddr[15] = i as u8;
            let r = SyncRecord6 {
                proto: 6,
                state: 1,
                fwd,
                template: false,
                caddr,
                cport: 1000 + i,
                vaddr: [0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0],
                vport: 80,
                // NAT64's IPv4 server and local address, mapped.
                daddr: std::net::Ipv4Addr::new(198, 18, 1, 11)
                    .to_ipv6_mapped()
                    .octets(),
                dport: 80,
                laddr: if fwd == FwdMethod::FullNat {
                    std::net::Ipv4Addr::new(198, 18, 1, 100)
                        .to_ipv6_mapped()
                        .octets()
                } else {
                    [0; 16]
                },
                lport: if fwd == FwdMethod::FullNat {
                    2000 + i
                } else {
                    0
                },
                timeout_s: 900,
                synproxy: None,
            };
            recs.push(r);
            b.push(&r.into(), 0, |_, _| panic!("one message"));
        }
        let mut m = Vec::new();
        b.flush(0, true, |x, _| m = x.to_vec());
        let r = route(&m, 5, &s).unwrap();
        assert_eq!((r.entries, r.unusable), (12, 0));
        let mut seen = 0;
        for (w, v) in r.per_worker.iter().enumerate() {
            for x in v {
                let x = x.v6().expect("an IPv6 record");
                assert!(recs.contains(x), "came back as sent");
                let want = match x.fwd {
                    FwdMethod::FullNat => x.lport as usize % 4,
                    _ => s.nat_owner6(&x.caddr, x.cport),
                };
                assert_eq!(w, want, "{:?}", x.fwd);
                seen += 1;
            }
        }
        assert_eq!(seen, 12);
    }

    #[test]
    fn a_wrong_syncid_or_a_cut_message_is_dropped_whole() {
        let s = snap(1);
        let m = message(5, &[rec(1, FwdMethod::Dr, 0)]);
        assert_eq!(
            route(&m, 6, &s),
            Err(MessageError::OtherSyncId { got: 5, want: 6 })
        );
        assert!(route(&m[..m.len() - 1], 5, &s).is_err());
        assert_eq!(route(&m, 0, &s).unwrap().per_worker[0].len(), 1);
    }
}
