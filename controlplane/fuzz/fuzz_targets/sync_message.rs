//! Arbitrary datagrams into the sync daemon's receive path: the IPVS
//! message decoder (`sync::message::decode`, versions 0 and 1, IPv4 and
//! IPv6 entries, options), the conversion of each entry to a worker record
//! (`sync::batch::from_wire`) and back, and the routing of the records to
//! their workers (`sync::receive::route`). Nothing may panic; an entry
//! that decodes and converts must come back from its own encoding as it
//! went in.
#![no_main]

use ferrovs_controlplane::sync::batch::{from_wire, to_wire};
use ferrovs_controlplane::sync::message::{decode, Encoder};
use ferrovs_controlplane::sync::receive::route;
use ferrovs_dataplane::conn::template::TemplateTable;
use ferrovs_dataplane::snapshot::{Snapshot, SnapshotBuilder};
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, OnceLock};

fn snap() -> &'static Snapshot {
    static S: OnceLock<Snapshot> = OnceLock::new();
    S.get_or_init(|| {
        SnapshotBuilder::new(1, 4, Arc::new(TemplateTable::new(64)))
            .build()
            .expect("an empty snapshot")
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = route(data, 0, snap());
    let Ok(d) = decode(data, 0) else {
        return;
    };
    for c in &d.conns {
        let Ok(r) = from_wire(c) else {
            continue;
        };
        let mut e = Encoder::new(1, 1472);
        let w = to_wire(&r);
        if e.push(&w).is_ok() {
            let back = decode(e.bytes(), 1).expect("our own message decodes");
            assert_eq!(back.conns.len(), 1);
            assert_eq!(from_wire(&back.conns[0]), Ok(r));
        }
    }
});
