//! The `ferrovs` appliance binary.

use clap::{ArgGroup, CommandFactory, Parser, Subcommand};
use ferrovs_controlplane::check::{check, CheckOutput};
use ferrovs_controlplane::daemon::{Exit, RunError};
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
    /// Hand the running appliance over to a new binary without losing a
    /// flow: the running process checks BINARY, stops, and executes it in
    /// its place (same PID); the new process reads the connection table
    /// back from the state directory. Prints what was restored.
    Upgrade {
        /// The new binary; default: this one.
        #[arg(value_name = "BINARY")]
        binary: Option<PathBuf>,
        /// Upgrade even when the connection table would be lost (another
        /// state layout, `state_dir off`).
        #[arg(long)]
        force: bool,
    },
    /// Print the connection-table layout this binary reads (`ferrovs
    /// upgrade` asks the new binary).
    #[command(hide = true)]
    StateLayout,
    /// The process ExaBGP runs for its API: relays between ExaBGP and the
    /// daemon's BGP socket (started by ferrovs itself).
    #[command(hide = true)]
    BgpRelay {
        #[arg(long, value_name = "PATH")]
        socket: PathBuf,
    },
    /// Print the manual page ferrovs(8), in roff (for packagers).
    #[command(hide = true)]
    Man,
    /// Print the completion script of a shell (for packagers).
    #[command(hide = true)]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// Text for a roff line: backslashes and leading dots escaped.
fn roff(s: &str) -> String {
    let t = s.replace('\\', "\\e").replace('-', "\\-");
    if t.starts_with('.') || t.starts_with('\'') {
        format!("\\&{t}")
    } else {
        t
    }
}

/// ferrovs(8): clap_mangen's page from the parser's own definitions, with
/// the sections a Debian manual page has that clap does not know.
fn man_page(out: &mut dyn Write) -> std::io::Result<()> {
    let cmd = Cli::command()
        .about("userspace layer-4 load balancer, compatible with LVS and keepalived")
        .long_about(
            "ferrovs forwards the traffic of virtual IPs to real servers in DR, NAT, FULLNAT or \
             TUN mode on AF_XDP, AF_PACKET or DPDK poll-mode cores, and runs VRRP failover, \
             health checks, reload without dropping flows, an ipvsadm-compatible control \
             socket (see ferrovsadm(8)) and Prometheus metrics in the same process. Its \
             configuration is keepalived.conf's syntax (see ferrovs.conf(5)).",
        );
    let man = clap_mangen::Man::new(cmd).section("8");
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    // The commands with their options on this page (clap_mangen would
    // point to a page per command).
    let cmd = Cli::command();
    writeln!(out, ".SH COMMANDS")?;
    for sub in cmd.get_subcommands().filter(|c| !c.is_hide_set()) {
        let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
        writeln!(
            out,
            ".TP\n\\fBferrovs {}\\fR\n{}",
            sub.get_name(),
            roff(&about)
        )?;
        let args: Vec<_> = sub
            .get_arguments()
            .filter(|a| !a.is_hide_set() && a.get_id() != "help")
            .collect();
        if args.is_empty() {
            continue;
        }
        writeln!(out, ".RS")?;
        for a in args {
            let mut names = Vec::new();
            if let Some(c) = a.get_short() {
                names.push(format!("\\fB\\-{c}\\fR"));
            }
            if let Some(l) = a.get_long() {
                names.push(format!("\\fB\\-\\-{}\\fR", roff(l)));
            }
            let value = a
                .get_value_names()
                .map(|v| format!(" \\fI{}\\fR", v.join(" ")))
                .filter(|_| a.get_action().takes_values())
                .unwrap_or_default();
            let help = a.get_help().map(|h| h.to_string()).unwrap_or_default();
            writeln!(out, ".TP\n{}{}\n{}", names.join(", "), value, roff(&help))?;
        }
        writeln!(out, ".RE")?;
    }
    out.write_all(
        br#".SH SIGNALS
.TP
\fBSIGHUP\fR
Reload the configuration, all or nothing, VRRP included (as keepalived).
.TP
\fBSIGTERM\fR
Hand VRRP over (priority 0 adverts), release the VIPs, stop. With BGP's
\fBdrain_timeout\fR, withdraw the VIPs and forward until the connections
end first; a second SIGTERM stops at once.
.TP
\fBSIGINT\fR
Stop at once.
.SH FILES
.TP
\fI/etc/ferrovs/ferrovs.conf\fR
The configuration of the packaged service (ferrovs.service).
.TP
\fI/run/ferrovs/ctl.sock\fR
The control socket ferrovsadm(8) and \fBferrovs status\fR use.
.SH ENVIRONMENT
.TP
\fBRUST_LOG\fR
Log filter (default \fBinfo\fR), e.g. \fBferrovs=debug\fR.
.TP
\fBFERROVS_CTL\fR
Another control socket.
.SH SEE ALSO
ferrovsadm(8), ferrovs.conf(5), keepalived.conf(5), ipvsadm(8);
/usr/share/doc/ferrovs/README.md
"#,
    )?;
    man.render_version_section(out)
}

/// `ferrovs upgrade`: asks the running appliance to hand over, then waits for
/// the new process to answer with what it restored.
fn upgrade(binary: Option<PathBuf>, force: bool) -> ! {
    use ferrovs_controlplane::northbound::ctl::{call, socket_path, CtlRequest, DEFAULT_SOCKET};
    use ferrovs_controlplane::state_files::Report;
    let path = socket_path(std::path::Path::new(DEFAULT_SOCKET));
    let fail = |msg: String| -> ! {
        eprintln!("ferrovs upgrade: {msg}");
        std::process::exit(1)
    };
    let binary = match binary.map(Ok).unwrap_or_else(std::env::current_exe) {
        Ok(b) => b,
        Err(e) => fail(format!("which binary: {e}")),
    };
    let op = |op: &str, argv: Vec<String>| CtlRequest {
        argv,
        stdin: None,
        op: Some(op.into()),
    };
    let report = |r: &ferrovs_controlplane::northbound::ctl::CtlResponse| -> Option<Report> {
        serde_json::from_str(&r.stdout).ok()
    };
    let before = match call(&path, &op("restored", vec![])) {
        Ok(r) if r.code == 0 => report(&r),
        Ok(r) => fail(format!("{}{}", r.stdout, r.stderr)),
        Err(e) => fail(format!("{} ({e}). Is ferrovs running?", path.display())),
    };
    let mut argv = vec![binary.display().to_string()];
    if force {
        argv.push("--force".into());
    }
    let t0 = std::time::Instant::now();
    match call(&path, &op("upgrade", argv)) {
        Ok(r) if r.code == 0 => print!("{}", r.stdout),
        Ok(r) => {
            eprint!("{}", r.stderr);
            std::process::exit(r.code)
        }
        Err(e) => fail(format!("{}: {e}", path.display())),
    }
    // The new process answers once its workers run.
    let deadline = t0 + std::time::Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
        let Ok(r) = call(&path, &op("restored", vec![])) else {
            continue;
        };
        let Some(now) = report(&r) else { continue };
        if before
            .as_ref()
            .is_some_and(|b| b.started_mono_ms == now.started_mono_ms)
        {
            continue;
        }
        println!(
            "ferrovs {} running ({} ms after the request; its start took {} ms): {}",
            now.version,
            t0.elapsed().as_millis(),
            now.start_ms,
            now.summary()
        );
        std::process::exit(0);
    }
    fail("the new process did not answer within 60 s; see the log".into())
}

/// Runs the appliance on the backend the configuration names.
fn run(file: &std::path::Path) -> Result<Exit, RunError> {
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
        Cmd::BgpRelay { socket } => {
            if let Err(e) = ferrovs_controlplane::bgp::relay::run(&socket) {
                eprintln!("ferrovs bgp-relay: {}: {e}", socket.display());
                std::process::exit(1);
            }
        }
        Cmd::Man => {
            if let Err(e) = man_page(&mut std::io::stdout().lock()) {
                eprintln!("ferrovs man: {e}");
                std::process::exit(1);
            }
        }
        Cmd::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "ferrovs",
                &mut std::io::stdout(),
            );
        }
        Cmd::StateLayout => println!("{}", ferrovs_controlplane::upgrade::layout_line()),
        Cmd::Upgrade { binary, force } => upgrade(binary, force),
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
            match run(&file) {
                Ok(Exit::Stopped) | Ok(Exit::HandedOver) => {}
                Ok(Exit::Upgrade(plan)) => {
                    let e = ferrovs_controlplane::upgrade::exec(&plan);
                    // The tables are in the state directory: a supervisor's
                    // restart of the old binary finds them too.
                    tracing::error!("upgrade: executing {}: {e}", plan.binary.display());
                    std::process::exit(1);
                }
                Err(e) => {
                    tracing::error!("{e}");
                    std::process::exit(1);
                }
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
