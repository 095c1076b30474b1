//! Realistic keepalived.conf files (the shapes the LVS guides use), each
//! with golden `ipvsadm -Ln` (`.dump`), `ipvsadm -Sn` (`.rules`) and
//! diagnostics (`.diag`) files. `FERROVS_BLESS=1 cargo test` rewrites the
//! goldens; review the diff before committing it.

use ferrovs_config::ipvs::initial_table;
use ferrovs_config::ipvsadm::{
    format_list, format_rules, ListOptions, Listing, IPVS_DEFAULT_TABLE_SIZE,
};
use ferrovs_config::load_file;
use std::path::{Path, PathBuf};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

fn corpus_files() -> Vec<PathBuf> {
    let dir = corpus_dir();
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "conf"))
        .collect();
    v.push(dir.join("include/main.conf"));
    v.sort();
    v
}

fn golden(path: &Path, ext: &str, actual: &str, failures: &mut Vec<String>) {
    let g = path.with_extension(ext);
    if std::env::var_os("FERROVS_BLESS").is_some() {
        std::fs::write(&g, actual).unwrap();
        return;
    }
    let expected =
        std::fs::read_to_string(&g).unwrap_or_else(|_| panic!("missing golden {}", g.display()));
    if expected != actual {
        failures.push(format!(
            "{} differs:\n--- expected\n{expected}--- actual\n{actual}",
            g.display()
        ));
    }
}

#[test]
fn corpus_matches_goldens() {
    let dir = corpus_dir();
    let prefix = format!("{}/", dir.display());
    let mut failures = Vec::new();
    let files = corpus_files();
    assert!(files.len() >= 10, "corpus too small: {files:?}");
    for f in &files {
        let loaded = load_file(f);
        let diag: String = loaded
            .diagnostics
            .items
            .iter()
            .map(|d| format!("{}\n", d.to_string().replace(&prefix, "")))
            .collect();
        assert!(
            !loaded.diagnostics.has_errors(),
            "{} has errors:\n{diag}",
            f.display()
        );
        let table = initial_table(&loaded.config);
        let dump = format_list(
            &Listing::from_table(&table, IPVS_DEFAULT_TABLE_SIZE),
            &ListOptions::default(),
        );
        golden(f, "dump", &dump, &mut failures);
        golden(f, "rules", &format_rules(&table, false), &mut failures);
        golden(f, "diag", &diag, &mut failures);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
