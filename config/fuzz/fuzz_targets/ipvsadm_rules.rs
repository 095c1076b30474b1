//! Any bytes as ipvsadm rules: parse/apply must not panic, and a table built
//! from them must save (-Sn) and restore to the same table. The comparison
//! is order-insensitive: ipvsadm's address comparison wraps at 2^31, so for
//! some address sets the listing order depends on the input order, as it
//! does in ipvsadm.
#![no_main]

use ferrovs_config::ipvs::Table;
use ferrovs_config::ipvsadm::{format_rules, table_from_rules};
use libfuzzer_sys::fuzz_target;

fn normalized(mut t: Table) -> Table {
    for s in &mut t.services {
        for d in &mut s.dests {
            d.u_threshold = 0;
            d.l_threshold = 0;
        }
        s.dests.sort_by_key(|d| (d.addr, d.port));
    }
    t.services.sort_by_key(|s| format!("{:?}", s.key));
    t
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(t) = table_from_rules(&text) {
        let rules = format_rules(&t, false);
        let back = table_from_rules(&rules).expect("-Sn output parses");
        assert_eq!(normalized(back), normalized(t));
    }
});
