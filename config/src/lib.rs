//! ferrovs configuration: the keepalived.conf syntax (drop-in compatible with
//! keepalived 2.2), the typed model with keepalived's defaults, validation
//! with `file:line:col` diagnostics, the ipvsadm rule language and output
//! formats, and the diff the reload path uses.
//!
//! ```
//! let loaded = ferrovs_config::load_str(
//!     "k.conf",
//!     "virtual_server 198.18.0.100 80 {\n lb_algo rr\n lb_kind DR\n protocol TCP\n real_server 198.18.1.1 80 { weight 2 }\n}\n",
//! );
//! assert!(!loaded.diagnostics.has_errors());
//! let rules = ferrovs_config::ipvsadm::format_rules(&ferrovs_config::ipvs::initial_table(&loaded.config), false);
//! assert_eq!(rules, "-A -t 198.18.0.100:80 -s rr\n-a -t 198.18.0.100:80 -r 198.18.1.1:80 -g -w 2\n");
//! ```

pub mod ast;
pub mod diag;
pub mod diff;
pub mod ipvs;
pub mod ipvsadm;
pub mod keepalived;
pub mod lexer;
pub mod model;
pub mod validate;
pub mod values;

pub use diag::{Diagnostic, Diagnostics, Location, Severity};
pub use lexer::{FileSource, LexOptions, MemFs, RealFs};
pub use model::*;

use std::path::Path;

/// A configuration and what was found while reading it. The configuration
/// is usable when `diagnostics` has no error.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub diagnostics: Diagnostics,
}

/// Reads, converts and validates a keepalived.conf (with its includes) from
/// any file source.
pub fn load_with(fs: &dyn FileSource, path: &Path, opts: &LexOptions) -> Loaded {
    let mut d = Diagnostics::default();
    let toks = lexer::lex_file(fs, path, opts, &mut d);
    let nodes = ast::build(&toks, &mut d);
    let (config, locs) = keepalived::convert(&nodes, &mut d);
    validate::validate(&config, &locs, &mut d);
    Loaded {
        config,
        diagnostics: d,
    }
}

/// Reads a keepalived.conf from the file system.
pub fn load_file(path: &Path) -> Loaded {
    load_with(&RealFs, path, &LexOptions::default())
}

/// Parses configuration text (includes resolve against an empty file set).
pub fn load_str(name: &str, text: &str) -> Loaded {
    let fs = MemFs::new().with(name, text);
    load_with(&fs, Path::new(name), &LexOptions::default())
}
