//! `ferrovs check -f FILE [--dump | --dump-rules | --json]`: validate a
//! keepalived.conf without touching the machine (no interface, script or
//! name lookups), and show what it would install.

use ferrovs_config::ipvs::initial_table;
use ferrovs_config::ipvsadm::{
    format_list, format_rules, ListOptions, Listing, IPVS_DEFAULT_TABLE_SIZE,
};
use ferrovs_config::{load_with, LexOptions, RealFs, Severity};
use std::path::Path;

/// What `check` prints besides the diagnostics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CheckOutput {
    #[default]
    Nothing,
    /// `ipvsadm -Ln` right after keepalived loaded the file.
    Dump,
    /// `ipvsadm -Sn`
    DumpRules,
    /// The typed model as JSON.
    Json,
}

/// Result of a check: text for stdout and stderr, and the exit code.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckResult {
    pub stdout: String,
    pub stderr: String,
    pub exit_code: i32,
}

/// Runs the check on `path` (`config_id` as keepalived's `-i`; default the
/// host name, as keepalived). Warnings go to stderr and keep exit code 0;
/// any error makes it 1 and suppresses the output.
pub fn check(path: &Path, output: CheckOutput, config_id: Option<String>) -> CheckResult {
    let opts = match config_id {
        Some(id) => LexOptions {
            config_id: Some(id),
        },
        None => LexOptions::keepalived_default(),
    };
    let loaded = load_with(&RealFs, path, &opts);
    let mut res = CheckResult::default();
    for d in &loaded.diagnostics.items {
        res.stderr.push_str(&d.to_string());
        res.stderr.push('\n');
    }
    let errors = loaded
        .diagnostics
        .items
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    if errors > 0 {
        res.stderr.push_str(&format!(
            "{}: {} error{}, configuration not usable\n",
            path.display(),
            errors,
            if errors == 1 { "" } else { "s" }
        ));
        res.exit_code = 1;
        return res;
    }
    let table = initial_table(&loaded.config);
    res.stdout = match output {
        CheckOutput::Nothing => String::new(),
        CheckOutput::Dump => format_list(
            &Listing::from_table(&table, IPVS_DEFAULT_TABLE_SIZE),
            &ListOptions::default(),
        ),
        CheckOutput::DumpRules => format_rules(&table, false),
        CheckOutput::Json => {
            let mut s = serde_json::to_string_pretty(&loaded.config).expect("model serializes");
            s.push('\n');
            s
        }
    };
    res
}
