//! Any bytes as a keepalived.conf (with one includable file): the parser,
//! converter and validator must not panic, and whatever loads without
//! errors must list and save without panicking, and its -Sn must parse back
//! to the same table (compared order-insensitively: ipvsadm's wrapping
//! address comparison makes the order of some address sets depend on the
//! input order).
#![no_main]

use ferrovs_config::ipvs::{initial_table, Table};
use ferrovs_config::ipvsadm::{format_list, format_rules, table_from_rules, ListOptions, Listing};
use ferrovs_config::{load_with, LexOptions, MemFs};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

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
    let (main, inc) = match text.split_once("\u{0}") {
        Some((a, b)) => (a.to_string(), b.to_string()),
        None => (text.to_string(), String::new()),
    };
    let fs = MemFs::new()
        .with("/k/keepalived.conf", &main)
        .with("/k/conf.d/a.conf", &inc);
    let opts = LexOptions {
        config_id: Some("lb1".into()),
    };
    let l = load_with(&fs, Path::new("/k/keepalived.conf"), &opts);
    for d in &l.diagnostics.items {
        let _ = d.to_string();
    }
    if l.diagnostics.has_errors() {
        return;
    }
    let t = initial_table(&l.config);
    let _ = format_list(&Listing::from_table(&t, 4096), &ListOptions::default());
    let rules = format_rules(&t, false);
    let back = table_from_rules(&rules).expect("-Sn output parses");
    assert_eq!(normalized(back), normalized(t), "-Sn restores the table");
    let _ = ferrovs_config::diff::diff(&l.config, &Default::default());
});
