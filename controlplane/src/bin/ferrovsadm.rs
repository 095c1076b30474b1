//! `ferrovsadm`: ipvsadm's command line against a running ferrovs. The
//! command line goes to the daemon as it is; the daemon parses and runs it
//! as ipvsadm would, so the output formats and error messages are one
//! implementation.

use ferrovs_controlplane::ctl::{call, socket_path, CtlRequest, DEFAULT_SOCKET};
use std::io::{Read, Write};
use std::path::Path;

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    // `-R` / `--restore` reads rules from standard input, as ipvsadm does.
    let stdin = if argv.iter().any(|a| a == "-R" || a == "--restore") {
        let mut s = String::new();
        if let Err(e) = std::io::stdin().read_to_string(&mut s) {
            eprintln!("ferrovsadm: reading standard input: {e}");
            std::process::exit(1);
        }
        Some(s)
    } else {
        None
    };
    let path = socket_path(Path::new(DEFAULT_SOCKET));
    match call(
        &path,
        &CtlRequest {
            argv,
            stdin,
            op: None,
        },
    ) {
        Ok(r) => {
            let _ = std::io::stdout().write_all(r.stdout.as_bytes());
            let _ = std::io::stderr().write_all(r.stderr.as_bytes());
            std::process::exit(r.code);
        }
        Err(e) => {
            // ipvsadm's wording when the kernel module is absent.
            eprintln!(
                "Can't initialize ipvs: {e} ({}). Is ferrovs running?",
                path.display()
            );
            std::process::exit(1);
        }
    }
}
