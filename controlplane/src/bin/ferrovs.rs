//! The `ferrovs` appliance binary.

use clap::{ArgGroup, Parser, Subcommand};
use ferrovs_controlplane::check::{check, CheckOutput};
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

fn main() {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Status => {
            use ferrovs_controlplane::ctl::{call_and_exit, CtlRequest};
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
            if let Err(e) = ferrovs_controlplane::daemon::run(&file, &open_afpacket) {
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

/// AF_PACKET ports: per interface, one socket per worker in a fanout group.
fn open_afpacket(
    ifaces: &[String],
    workers: usize,
) -> std::io::Result<Vec<Vec<ferrovs_dataplane::port::afpacket::AfPacketPort>>> {
    use ferrovs_dataplane::port::afpacket::{AfPacketOptions, AfPacketPort};
    let opts = AfPacketOptions::default();
    let mut per_worker: Vec<Vec<AfPacketPort>> = (0..workers).map(|_| Vec::new()).collect();
    for i in ifaces {
        for (w, p) in AfPacketPort::open_fanout(i, workers, &opts)?
            .into_iter()
            .enumerate()
        {
            per_worker[w].push(p);
        }
    }
    Ok(per_worker)
}
