//! ipvsadm 1.31's command language and output formats.

pub mod list;
pub mod rules;

pub use list::{
    format_conns, format_daemons, format_list, format_list_service, format_timeout, sort_table,
    ConnEntry, ConnProto, ListOptions, ListedDest, ListedService, Listing, Stats, SyncDaemon,
    IPVS_DEFAULT_TABLE_SIZE,
};
pub use rules::{
    apply, format_rules, parse_command, parse_rules, table_from_rules, Command, DaemonOptions,
    ParseError, RuleError, RuleProblem, TableError,
};
