//! Any bytes as ipvsadm rules: parse/apply must not panic, and a table built
//! from them must save and re-parse to the same -Sn text.
#![no_main]

use ferrovs_config::ipvsadm::{format_rules, table_from_rules};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(t) = table_from_rules(&text) {
        let rules = format_rules(&t, false);
        let back = table_from_rules(&rules).expect("-Sn output parses");
        assert_eq!(format_rules(&back, false), rules);
    }
});
