//! The `ferrovs` appliance binary.

use clap::{ArgGroup, Parser, Subcommand};
use ferrovs_controlplane::check::{check, CheckOutput};
use ferrovs_controlplane::daemon::RunError;
use ferrovs_controlplane::{afpacket_ports, afxdp_ports};
use std::io::Write;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "ferrovs",
    version,
    about = "userspace L4 load balancer (LVS + keepalived replacement)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Show the running appliance's VRRP instances and VIPs (JSON).
    Status,
    /// Run the appliance: forward for the virtual servers of FILE.
    Run {
        /// Configuration file (keepalived.conf syntax).
        #[arg(short = 'f', long = "use-file", value_name = "FILE")]
        file: PathBuf,
    },
    /// Validate a keepalived.conf; errors name file:line:col.
    #[command(group(ArgGroup::new("out").args(["dump", "dump_rules", "json"])))]
    Check {
        /// Configuration file (keepalived.conf syntax).
        #[arg(short = 'f', long = "use-file", value_name = "FILE")]
        file: PathBuf,
        /// Print the services as `ipvsadm -Ln` would list them.
        #[arg(long)]
        dump: bool,
        /// Print the services as `ipvsadm -Sn` would save them.
        #[arg(long = "dump-rules")]
        dump_rules: bool,
        /// Print the configuration model as JSON.
        #[arg(long)]
        json: bool,
        /// keepalived's config id for `@ID` lines.
        #[arg(short = 'i', long = "config-id", value_name = "ID")]
        config_id: Option<String>,
    },
}

/// Runs the appliance on the backend the configuration names.
fn run(file: &std::path::Path) -> Result<(), RunError> {
    use ferrovs_config::model::Backend;
    let backend = ferrovs_config::load_file(file).config.ferrovs.backend;
    match backend {
        Backend::Afpacket => ferrovs_controlplane::daemon::run(file, &afpacket_ports::open),
        Backend::Afxdp => ferrovs_controlplane::daemon::run(file, &afxdp_ports::open),
        Backend::Auto => match ferrovs_dataplane::port::afxdp::available() {
            Ok(()) => ferrovs_controlplane::daemon::run(file, &afxdp_ports::open),
            Err(why) => {
                tracing::warn!("backend: AF_PACKET, because AF_XDP is not available: {why}");
                ferrovs_controlplane::daemon::run(file, &afpacket_ports::open)
            }
        },
        #[cfg(feature = "dpdk")]
        Backend::Dpdk => {
            ferrovs_controlplane::daemon::run(file, &ferrovs_controlplane::dpdk_ports::open)
        }
        #[cfg(not(feature = "dpdk"))]
        Backend::Dpdk => Err(RunError::Unsupported(
            "backend dpdk: this ferrovs was built without DPDK support (build with --features dpdk)",
        )),
    }
}

fn main() {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Status => {
            use ferrovs_controlplane::northbound::ctl::{call_and_exit, CtlRequest};
            call_and_exit(
                &CtlRequest {
                    argv: vec![],
                    stdin: None,
                    op: Some("status".into()),
                },
                |path, e| {
                    format!(
                        "ferrovs status: {} ({e}). Is ferrovs running?",
                        path.display()
                    )
                },
            )
        }
        Cmd::Run { file } => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
                )
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .init();
            if let Err(e) = run(&file) {
                tracing::error!("{e}");
                std::process::exit(1);
            }
        }
        Cmd::Check {
            file,
            dump,
            dump_rules,
            json,
            config_id,
        } => {
            let output = if dump {
                CheckOutput::Dump
            } else if dump_rules {
                CheckOutput::DumpRules
            } else if json {
                CheckOutput::Json
            } else {
                CheckOutput::Nothing
            };
            let r = check(&file, output, config_id);
            let _ = std::io::stderr().write_all(r.stderr.as_bytes());
            let _ = std::io::stdout().write_all(r.stdout.as_bytes());
            std::process::exit(r.exit_code);
        }
    }
}
